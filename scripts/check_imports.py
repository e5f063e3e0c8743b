"""`import ledom_reason` must stay light: no torch, vllm, fastapi, langchain_core or dspy."""

import subprocess
import sys

HEAVY = ["torch", "vllm", "fastapi", "langchain_core", "dspy", "transformers", "httpx"]
code = (
    "import sys, ledom_reason, ledom_reason.integrations, ledom_reason.training; "
    "import ledom_reason.search, ledom_reason.eval, ledom_reason.generators, ledom_reason.concurrency; "
    f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
)
out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
if out:
    sys.exit(f"import ledom_reason pulled in heavy modules: {out}")
print("check_imports: ok")
