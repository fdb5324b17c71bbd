"""Issue #13 benchmark: the hook's share of a training update at world 4 across two nodes.

Two torchrun agents on 127.0.0.1 (c10d rendezvous, 2 processes each) run ``launch_scripts/train.py``
(dp2 x tp2, gloo, lr sync every update). Each worker times every ``hook.step(n)`` call and the whole
update it belongs to (from one ``hook.step`` to the next: lr sync, forward, backward, optimizer step,
lr log), both measured in the same process and run. A ``dist.barrier()`` before each ``hook.step``
(counted in the update, not in the hook) lines the ranks up, so the hook is not charged for the
time a rank waits for a slower one to reach the sync (4 processes share 2 cores here). Reported: medians over updates and ranks, and
``hook.step`` ÷ update (target < 1%).

Run: python bench/bench_train_share.py [--quick]
"""
import argparse
import glob
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_ENV = "COLOSSAL_SCHED_BENCH_OUT"


def worker(argv):
    """Inside torchrun: train.py with its hook's ``step`` timed."""
    sys.path.insert(0, ROOT)
    import torch.distributed as dist

    from hooks import LRSchedulerHook
    from launch_scripts import train

    hook_s, starts = [], []

    class TimedHook(LRSchedulerHook):
        def step(self, *args, **kwargs):
            starts.append(time.perf_counter())
            if dist.is_initialized():  # untimed: so the sync is not charged for ranks arriving at different times
                dist.barrier()
            t0 = time.perf_counter()
            out = super().step(*args, **kwargs)
            hook_s.append(time.perf_counter() - t0)
            return out

    train.LRSchedulerHook = TimedHook
    code = train.main(argv)
    update_s = [b - a for a, b in zip(starts, starts[1:])]
    with open(os.path.join(os.environ[OUT_ENV], f"rank{os.environ['RANK']}.json"), "w") as f:
        json.dump({"hook_s": hook_s[:-1], "update_s": update_s}, f)
    return code


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(steps, warmup):
    out = tempfile.mkdtemp(prefix="bench_train_share_")
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", OUT_ENV: out}
    agents = []
    for node in range(2):
        cwd = os.path.join(out, f"node{node}")
        os.makedirs(cwd)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "2",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"bench{port}",
               "--rdzv-conf", f"is_host={int(node == 0)}", os.path.abspath(__file__), "--worker",
               "--dp", "2", "--tp", "2", "--total-steps", str(steps), "--log-every", "0",
               "--lr-log", os.path.join(out, "lr.jsonl")]
        log = open(os.path.join(cwd, "agent.log"), "w")
        agents.append(subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    for node, agent in enumerate(agents):
        if agent.wait(timeout=900) != 0:
            sys.exit(f"node {node} failed:\n" + open(os.path.join(out, f"node{node}", "agent.log")).read()[-4000:])
    hook, update = [], []
    for path in sorted(glob.glob(os.path.join(out, "rank*.json"))):
        data = json.load(open(path))
        hook += data["hook_s"][warmup:]
        update += data["update_s"][warmup:]
    assert len(glob.glob(os.path.join(out, "rank*.json"))) == 4, "a rank wrote no timings"
    return statistics.median(hook), statistics.median(update), len(update)


if __name__ == "__main__":
    if "--worker" in sys.argv:
        sys.argv.remove("--worker")
        sys.exit(worker(sys.argv[1:]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="60 updates instead of 200")
    args = parser.parse_args()
    steps = 60 if args.quick else 200
    hook_s, update_s, n = run(steps, warmup=10)
    print("| world 4 = 2 nodes x 2 (gloo, 127.0.0.1, dp2 x tp2) | median ms | share of the update |")
    print("|---|---|---|")
    print(f"| whole update (baseline) | {update_s * 1e3:.2f} | 100% |")
    print(f"| `hook.step(n)` (lr sync every update) | {hook_s * 1e3:.3f} | {hook_s / update_s:.2%} |")
    print(f"\n{n} updates x ranks after 10 warm-up updates; target: hook share < 1%: "
          f"{'met' if hook_s / update_s < 0.01 else 'NOT met'} ({hook_s / update_s:.2%})")
