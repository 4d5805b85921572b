#!/usr/bin/env bash
# GPU check: random ~0.5B Qwen2-style teacher and student built here (nothing downloaded), three training steps
# of opd and brts with vLLM rollouts, step times and peak GPU memory; stopped if it runs past 8 minutes.
# Needs a GPU and `pip install -e .[vllm]`. On CPU: scripts/gpu_check.sh --size tiny --backend hf
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec timeout 480 python scripts/gpu_check.py "$@"
