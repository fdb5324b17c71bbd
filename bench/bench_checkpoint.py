"""Issue #4 benchmark: what the scheduler state adds to a checkpoint of the example model.

DCP save/load of the tiny LM (model + AdamW state) with and without the hook's state, in one
process, medians of repeated runs; bytes on disk compared file by file.

Run: python bench/bench_checkpoint.py [--quick]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

import torch
import torch.distributed.checkpoint as dcp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore")

import colossal_sched as cs  # noqa: E402
from colossal_sched.checkpoint import read_dcp_state, save_booster_state  # noqa: E402
from hooks import LRSchedulerHook  # noqa: E402
from launch_scripts.tiny_lm import Stage, batch  # noqa: E402


def size(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def once(fn):
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def paired(without, with_state, repeats):
    """Medians (ms) of ``without``, ``with_state`` and of their paired difference, run alternately."""
    a, b, diff = [], [], []
    for _ in range(repeats):
        ta, tb = once(without), once(with_state)
        a.append(ta), b.append(tb), diff.append(tb - ta)
    return statistics.median(a), statistics.median(b), statistics.median(diff)


def main(repeats):
    model = Stage(64, 32, 4, 4, range(4), 16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = batch(0, 0, 8, 16, 64)
    torch.nn.functional.cross_entropy(model(x).reshape(-1, 64), y.reshape(-1)).backward()
    opt.step()
    hook = LRSchedulerHook(cs.CosineAnnealingWarmupLR(opt, 1000, warmup_steps=100))
    hook.step(123)
    base = {"model": model.state_dict(), "optimizer": opt.state_dict()}
    with tempfile.TemporaryDirectory() as d:
        n = iter(range(10**6))
        save = paired(lambda: dcp.save(base, checkpoint_id=f"{d}/a{next(n)}", no_dist=True),
                      lambda: dcp.save({**base, "lr_scheduler": hook}, checkpoint_id=f"{d}/b{next(n)}", no_dist=True), repeats)
        bytes_plain, bytes_with = size(f"{d}/a0"), size(f"{d}/b1")
        load = paired(lambda: dcp.load({"model": model.state_dict()}, checkpoint_id=f"{d}/b1", no_dist=True),
                      lambda: dcp.load({"model": model.state_dict(), "lr_scheduler": hook}, checkpoint_id=f"{d}/b1",
                                       no_dist=True), repeats)
        read_ms = statistics.median(once(lambda: hook.load_state_dict(read_dcp_state(f"{d}/b1"))) for _ in range(repeats))
        state_us = statistics.median(once(lambda: hook.load_state_dict(hook.state_dict())) for _ in range(200)) * 1e3
        json_path = save_booster_state(hook, f"{d}/booster")
        json_bytes = os.path.getsize(json_path)
        json_ms = statistics.median(once(lambda: save_booster_state(hook, f"{d}/booster")) for _ in range(repeats))
    print("| DCP, tiny LM (model + AdamW) | without scheduler | with the hook's state | added (median of paired runs) |")
    print("|---|---|---|---|")
    print(f"| save, ms | {save[0]:.2f} | {save[1]:.2f} | {save[2]:+.2f} |")
    print(f"| load (model, + scheduler), ms | {load[0]:.2f} | {load[1]:.2f} | {load[2]:+.2f} |")
    print(f"| checkpoint size, bytes | {bytes_plain} | {bytes_with} | {bytes_with - bytes_plain:+d} |")
    print(f"\nhook state_dict + load_state_dict {state_us:.1f} us; read_dcp_state (its own DCP read, no pickle of code) + load "
          f"{read_ms:.2f} ms; Booster JSON file {json_bytes} bytes, written atomically (fsync + rename) in {json_ms:.2f} ms; "
          f"{repeats} paired runs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    main(9 if parser.parse_args().quick else 41)
