#!/usr/bin/env bash
# GPU go/no-go check: random ~0.5B Qwen2-style teacher and student built here (nothing downloaded), three
# training steps of opd and brts with vLLM rollouts; one table (step time, vLLM tokens/s, peak GPU memory,
# pass/fail), exit 1 on any failure; stopped if it runs past 6 minutes (the install of `nox -s gpu_check`
# takes the rest of its 8; GPU_CHECK_TIMEOUT=seconds changes it). Needs a GPU and `pip install -e .[vllm]`. On CPU: --size tiny --backend hf
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec timeout "${GPU_CHECK_TIMEOUT:-360}" python scripts/gpu_check.py "$@"
