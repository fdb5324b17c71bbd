#!/usr/bin/env bash
# Several nodes with c10d rendezvous. Run the same command on every node, with:
#   NNODES       number of nodes                      (e.g. 2)
#   NPROC        processes (GPUs) per node            (e.g. 8)
#   RDZV_HOST    host:port of the rendezvous endpoint (e.g. node0.example:29500)
#   RDZV_ID      a job id shared by the nodes         (e.g. lr-run-42)
#   DP, PP, TP   the mesh; DP*PP*TP == NNODES*NPROC
#   CKPT_DIR     a directory every node can read and write (shared filesystem)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${NNODES:?set NNODES}" "${NPROC:?set NPROC}" "${RDZV_HOST:?set RDZV_HOST}" "${RDZV_ID:?set RDZV_ID}"
exec torchrun --nnodes "$NNODES" --nproc_per_node "$NPROC" --rdzv_backend c10d --rdzv_endpoint "$RDZV_HOST" \
    --rdzv_id "$RDZV_ID" --max_restarts "${MAX_RESTARTS:-0}" launch_scripts/train.py \
    --dp "${DP:?set DP}" --pp "${PP:-1}" --tp "${TP:-1}" --ckpt-dir "${CKPT_DIR:?set CKPT_DIR}" \
    --save-every "${SAVE_EVERY:-100}" --resume "$@"
