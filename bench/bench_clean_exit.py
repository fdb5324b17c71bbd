"""Issue #19 benchmark: aborts at interpreter exit, a plain torch gloo script against ours, in the same run.

Both scripts end without any clean-up. Plain: init, 6 broadcasts, exit (torch 2.13 itself sometimes
aborts there: ``terminate called without an active exception``). Ours: tests/exit_without_cleanup.py
(the hook with lr sync, overlap and the checkpoint lock, a few updates). Each run starts the ranks with
torchrun's environment through tests/forked_launch.py: ``--exec`` makes every rank a fresh interpreter
(as torchrun starts it; seconds per run), the default forks them from one that imported torch (cheap,
but a forked rank seldom hits torch's race). Not a timed test: it prints abort counts.

Run: python bench/bench_clean_exit.py [--runs 30] [--worlds 2 4] [--exec]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLAIN = """import torch, torch.distributed as dist
dist.init_process_group("gloo")
for _ in range(6):
    dist.broadcast(torch.ones(4), 0)
"""
OURS = os.path.join(ROOT, "tests", "exit_without_cleanup.py")
PRELOAD = ("hooks", "colossal_sched.launch", "colossal_sched.ckpt_lock", "torch._dynamo")


def runs(world, n, script, args, fresh, work):
    preload = [] if fresh else [a for name in PRELOAD for a in ("--preload", name)]
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "forked_launch.py"), "--world", str(world),
                          "--runs", str(n), "--out-dir", work, *(["--exec"] if fresh else []), *preload, script, *args],
                         cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--worlds", type=int, nargs="+", default=[2, 4])
    p.add_argument("--exec", action="store_true", help="fresh interpreters, as torchrun starts them (slow)")
    a = p.parse_args()
    mode = "fresh interpreters" if a.exec else "forked ranks"
    print(f"| world | plain torch: aborts / runs (non-zero exits) | ours: aborts / runs (non-zero exits) | {mode} |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        plain = os.path.join(work, "plain.py")
        with open(plain, "w") as f:
            f.write(PLAIN)
        for world in a.worlds:
            row = []
            for script, args in ((plain, []), (OURS, [os.path.join(work, f"ckpt{world}")])):
                r = runs(world, a.runs, script, args, a.exec, work)
                row.append(f"{r['aborts']} / {r['runs']} ({r['failed']}), {r['seconds']:.0f} s")
            print(f"| {world} | {row[0]} | {row[1]} | |", flush=True)


if __name__ == "__main__":
    main()
