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


def timed(fn, repeats):
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out) * 1e3


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
        paths = iter(range(10**6))
        save_plain = timed(lambda: dcp.save(base, checkpoint_id=f"{d}/a{next(paths)}", no_dist=True), repeats)
        save_with = timed(lambda: dcp.save({**base, "lr_scheduler": hook}, checkpoint_id=f"{d}/b{next(paths)}", no_dist=True), repeats)
        bytes_plain, bytes_with = size(f"{d}/a0"), size(f"{d}/b{repeats}")
        sched_only = timed(lambda: dcp.save({"lr_scheduler": hook}, checkpoint_id=f"{d}/c{next(paths)}", no_dist=True), repeats)
        load_plain = timed(lambda: dcp.load({"model": model.state_dict()}, checkpoint_id=f"{d}/a0", no_dist=True), repeats)
        load_sched = timed(lambda: hook.load_state_dict(read_dcp_state(f"{d}/b{repeats}")), repeats)
        state_ms = timed(lambda: hook.load_state_dict(hook.state_dict()), repeats * 20)
        json_path = save_booster_state(hook, f"{d}/booster")
        json_bytes = os.path.getsize(json_path)
        json_ms = timed(lambda: save_booster_state(hook, f"{d}/booster"), repeats)
    print("| what | model+optimizer | with scheduler state | added |\n|---|---|---|---|")
    print(f"| DCP save, ms | {save_plain:.2f} | {save_with:.2f} | {save_with - save_plain:+.2f} ({(save_with - save_plain) / save_plain:+.1%}) |")
    print(f"| DCP checkpoint size, bytes | {bytes_plain} | {bytes_with} | {bytes_with - bytes_plain:+d} |")
    print(f"\nscheduler state alone: state_dict+load_state_dict {state_ms * 1e3:.1f} us; DCP entry save {sched_only:.2f} ms "
          f"(a whole DCP save of that one entry); read back with read_dcp_state + load {load_sched:.2f} ms "
          f"(model load {load_plain:.2f} ms); Booster JSON file {json_bytes} bytes, written atomically in {json_ms:.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    main(5 if parser.parse_args().quick else 15)
