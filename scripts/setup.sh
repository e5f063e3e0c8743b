#!/usr/bin/env bash
# Create .venv with CPU torch first (a plain `pip install torch` would pull several GB of CUDA wheels),
# then install ledom-reason with everything the tests need. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==2.13.0" || .venv/bin/python -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
.venv/bin/python -m pip install -q -e ".[dev]"
echo "ledom-reason installed in .venv ($(.venv/bin/python -c 'import ledom_reason; print(ledom_reason.__version__)'))" >&2
