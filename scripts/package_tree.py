"""Mirror the installed package layout (pyproject's ``package-dir`` mapping) as a tree of symlinks.

``ledom_reason.integrations`` and ``ledom_reason.training`` live in the top-level ``integrations/`` and
``training/`` folders; an editable install maps them with an import hook, which static tools (import-linter,
mypy) do not run. This script builds ``<out>/ledom_reason/...`` with real folders and one symlink per source
file, so those tools see the package exactly as Python imports it. Run by ``scripts/static_checks.sh``.

Usage: ``python scripts/package_tree.py OUT_DIR``
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(out: Path) -> Path:
    setuptools_cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping: dict[str, str] = setuptools_cfg["package-dir"]
    if out.exists():
        shutil.rmtree(out)
    # longest package names last, so that a mapped subpackage is laid over its parent's folder
    for package, folder in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
        src = ROOT / folder
        dst = out.joinpath(*package.split("."))
        for path in sorted(src.rglob("*.py")) + sorted(src.rglob("py.typed")):
            rel = path.relative_to(src)
            if "__pycache__" in rel.parts:
                continue
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(path)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(build(Path(sys.argv[1]).resolve()))
