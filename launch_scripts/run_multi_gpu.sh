#!/usr/bin/env bash
# Single node, several GPUs (NCCL; the lr broadcast itself travels on a gloo side group).
usage() {
    cat <<'USAGE'
Usage: NGPU=8 DP=2 PP=2 TP=2 bash launch_scripts/run_multi_gpu.sh [more train.py flags]

Environment (all optional):
  NGPU          processes, one per GPU (default: every visible GPU)
  DP, PP, TP    the mesh (default DP=NGPU, PP=1, TP=1); DP * PP * TP == NGPU
  CKPT_DIR      checkpoint directory (default runs/gpu/ckpt); resumed from whenever it holds one
  SAVE_EVERY    checkpoint every N updates (default 100)
  TOTAL_STEPS   updates of the schedule (default 1000)
  MAX_RESTARTS  torchrun --max-restarts (default 0)
  PY            the Python to run (default the project's .venv/bin/python when present, else python3)
USAGE
}
set -euo pipefail
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)  # run from any directory: each node may have its own
if [ -z "${PY:-}" ]; then if [ -x "$ROOT/.venv/bin/python" ]; then PY=$ROOT/.venv/bin/python; else PY=python3; fi; fi
NGPU=${NGPU:-$("$PY" -c 'import torch; print(torch.cuda.device_count())')}
if [ "$NGPU" -lt 1 ]; then
    echo "error: no GPU visible (NGPU=$NGPU); use launch_scripts/run_cpu_demo.sh on CPU" >&2
    exit 2
fi
DP=${DP:-$NGPU} PP=${PP:-1} TP=${TP:-1}
CMD=("$PY" -m torch.distributed.run --standalone --nproc-per-node "$NGPU" --max-restarts "${MAX_RESTARTS:-0}"
     "$ROOT/launch_scripts/train.py" --backend nccl --dp "$DP" --pp "$PP" --tp "$TP" --ckpt-dir "${CKPT_DIR:-runs/gpu/ckpt}"
     --save-every "${SAVE_EVERY:-100}" --total-steps "${TOTAL_STEPS:-1000}" "$@")
echo "+ ${CMD[*]}"
exec "${CMD[@]}"
