#!/usr/bin/env bash
# Single-node CPU demo: train on 4 ranks (dp2 x tp2) with a checkpoint every 10 updates, stop at 30
# (as if preempted), resume on 8 ranks (dp2 x pp2 x tp2) and finish; then show the checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one thread per rank (torchrun would set it, with a notice)
OUT=${OUT:-runs/cpu_demo}
rm -rf "$OUT" && mkdir -p "$OUT"
COMMON=(--scheduler CosineAnnealingWarmupLR --total-steps 60 --warmup-steps 6 --lr 3e-3 --scheduler-arg eta_min=1e-5
        --ckpt-dir "$OUT/ckpt" --save-every 10 --lr-log "$OUT/lr.jsonl" --log-every 10)
echo "== train on 4 ranks (dp2 x tp2), stop at update 30"
"$PY" -m torch.distributed.run --standalone --nproc_per_node 4 launch_scripts/train.py --dp 2 --tp 2 "${COMMON[@]}" --stop-at 30
echo "== resume on 8 ranks (dp2 x pp2 x tp2) from the newest checkpoint"
"$PY" -m torch.distributed.run --standalone --nproc_per_node 8 launch_scripts/train.py --dp 2 --pp 2 --tp 2 "${COMMON[@]}" --resume
echo "== the checkpoint"
"$PY" -m colossal_sched.cli inspect "$OUT/ckpt/step_00000060"
"$PY" - "$OUT/lr.jsonl" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by_step = {}
for r in rows:
    by_step.setdefault(r["step"], set()).add(tuple(r["lr"]))
assert sorted(by_step) == list(range(60)), "an update is missing from the lr log"
assert all(len(v) == 1 for v in by_step.values()), "ranks disagreed on the lr"
print(f"lr log: {len(rows)} lines, 60 updates, every rank agreed at every step")
PYEOF
