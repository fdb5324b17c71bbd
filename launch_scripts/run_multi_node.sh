#!/usr/bin/env bash
# Several nodes, c10d rendezvous: run the same command on every node (only LOCAL_ADDR differs).
usage() {
    cat <<'USAGE'
Usage: NNODES=2 NPROC=8 RDZV_HOST=node0.example:29500 RDZV_ID=lr-run-42 DP=4 TP=4 CKPT_DIR=/shared/ckpt \
           bash launch_scripts/run_multi_node.sh [more train.py flags]

Environment (required):
  NNODES        number of nodes, or MIN:MAX for an elastic job that goes on with fewer nodes (e.g. 2 or 1:2)
  NPROC         processes (GPUs) per node
  RDZV_HOST     host:port of the rendezvous; the node whose address it names hosts it (start that one first;
                if that node is lost, the job is lost)
  RDZV_ID       a job id shared by the nodes (a restarted job keeps it, and so takes its own checkpoint lock back)
  DP            data-parallel size, or 'auto' (world / (PP * TP), needed when NNODES is MIN:MAX)
  CKPT_DIR      checkpoint directory on a filesystem every node shares (DCP: each rank writes its own shards)
Environment (optional):
  PP            pipeline-parallel size (default 1)
  TP            tensor-parallel size (default 1); DP * PP * TP == nodes * NPROC
  MAX_RESTARTS  torchrun --max-restarts (default 2): failed workers are restarted and resume from CKPT_DIR
  SAVE_EVERY    checkpoint every N updates (default 100)
  LOCAL_ADDR    this node's address as the other nodes reach it (torchrun --local-addr; default: its hostname)
  RDZV_CONF     torchrun --rdzv-conf, e.g. is_host=1 on the node that hosts the rendezvous, or
                last_call_timeout=5,keep_alive_interval=2 for a quicker re-form after a node is lost
  PY            the Python to run (default the project's .venv/bin/python when present, else python3)
  GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME  the network interface for the collectives
train.py resumes by itself from the newest complete checkpoint in CKPT_DIR whenever there is one.
USAGE
}
set -euo pipefail
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)  # run from any directory: each node may have its own
if [ -z "${PY:-}" ]; then if [ -x "$ROOT/.venv/bin/python" ]; then PY=$ROOT/.venv/bin/python; else PY=python3; fi; fi
missing=()
for v in NNODES NPROC RDZV_HOST RDZV_ID DP CKPT_DIR; do [ -n "${!v:-}" ] || missing+=("$v"); done
if [ ${#missing[@]} -gt 0 ]; then
    echo "error: set ${missing[*]} (see --help)" >&2
    exit 2
fi
CMD=("$PY" -m torch.distributed.run --nnodes "$NNODES" --nproc-per-node "$NPROC" --rdzv-backend c10d
     --rdzv-endpoint "$RDZV_HOST" --rdzv-id "$RDZV_ID" --max-restarts "${MAX_RESTARTS:-2}")
[ -z "${LOCAL_ADDR:-}" ] || CMD+=(--local-addr "$LOCAL_ADDR")
[ -z "${RDZV_CONF:-}" ] || CMD+=(--rdzv-conf "$RDZV_CONF")
CMD+=("$ROOT/launch_scripts/train.py" --dp "$DP" --pp "${PP:-1}" --tp "${TP:-1}" --ckpt-dir "$CKPT_DIR"
      --save-every "${SAVE_EVERY:-100}" "$@")
echo "+ ${CMD[*]}"
exec "${CMD[@]}"
