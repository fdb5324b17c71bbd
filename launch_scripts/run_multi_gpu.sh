#!/usr/bin/env bash
# Single node, several GPUs (NCCL; the lr broadcast itself travels on a gloo side group).
# Usage: NGPU=8 DP=2 PP=2 TP=2 bash launch_scripts/run_multi_gpu.sh [more train.py flags]
set -euo pipefail
cd "$(dirname "$0")/.."
NGPU=${NGPU:-$(python3 -c 'import torch; print(torch.cuda.device_count())')}
DP=${DP:-$NGPU} PP=${PP:-1} TP=${TP:-1}
exec torchrun --standalone --nproc_per_node "$NGPU" launch_scripts/train.py --backend nccl \
    --dp "$DP" --pp "$PP" --tp "$TP" --ckpt-dir "${CKPT_DIR:-runs/gpu/ckpt}" --save-every "${SAVE_EVERY:-100}" \
    --total-steps "${TOTAL_STEPS:-1000}" "$@"
