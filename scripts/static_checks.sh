#!/usr/bin/env bash
# Static checks run by .ci/run: ruff, the import-layer contracts (import-linter) and the type checker (mypy).
# import-linter and mypy read a symlink mirror of the installed package layout (scripts/package_tree.py),
# because ledom_reason.integrations / ledom_reason.training live in top-level folders (pyproject package-dir).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
BIN=$(dirname "$PY")
TREE=$ROOT/build/package-tree
"$BIN/ruff" check .
"$PY" scripts/package_tree.py "$TREE" >/dev/null
# run from inside the tree so that `ledom_reason` resolves there first (not through the editable import hook)
(cd "$TREE" && PYTHONPATH=$TREE "$BIN/lint-imports" --no-cache "$ROOT/pyproject.toml")
(cd "$TREE" && PYTHONPATH=$TREE "$BIN/mypy" --config-file "$ROOT/pyproject.toml" -p ledom_reason)
echo "static checks: ok"
