"""Issue #4 and #9 benchmark: what the scheduler state and the checkpoint safety add to a checkpoint.

* Issue #4: DCP save/load of the tiny LM (model + AdamW state) with and without the hook's state, in
  one process, medians of repeated runs; bytes on disk compared file by file.
* Issue #9: a save at world 4 (gloo, 127.0.0.1) through ``save_dcp`` with the run lock (agreement on
  step and directory, ``.metadata`` verification, lock check, publish) against the bare protocol it
  replaces (barrier, ``dcp.save``, barrier, rename, barrier), run alternately: medians of each and of
  the paired differences.

Run: python bench/bench_checkpoint.py [--quick] [--world 4]   (under flock /tmp/colossal_mp.lock)
"""
import argparse
import json
import os
import shutil
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
from colossal_sched.checkpoint import RunLock, SafeFileSystemReader, read_dcp_state, save_booster_state, save_dcp  # noqa: E402
from colossal_sched.ckpt_agreement import share_verdict  # noqa: E402
from colossal_sched.safe_reader import missing_files  # noqa: E402
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


def bare_save(state, checkpoint_dir, step):
    """The protocol save_dcp replaces: no agreement, no verification, no lock."""
    import torch.distributed as dist

    final = os.path.join(checkpoint_dir, f"step_{step:08d}")
    tmp = final + ".partial"
    if dist.get_rank() == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    dist.barrier()
    dcp.save(state, checkpoint_id=tmp)
    dist.barrier()
    if dist.get_rank() == 0:
        os.replace(tmp, final)
        fd = os.open(checkpoint_dir, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    dist.barrier()
    return final


def _world_rank(rank, world, port, repeats, root, out):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"tcp://127.0.0.1:{port}")
    model = Stage(64, 32, 4, 4, range(4), 16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = batch(0, rank, 8, 16, 64)
    torch.nn.functional.cross_entropy(model(x).reshape(-1, 64), y.reshape(-1)).backward()
    opt.step()
    hook = LRSchedulerHook(cs.CosineAnnealingWarmupLR(opt, 1000, warmup_steps=100), sync=False)
    hook.step(123)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "lr_scheduler": hook}
    lock = RunLock(os.path.join(root, "safe")).acquire()
    a, b, diff = [], [], []
    pair = [(bare_save, "bare"), (lambda s, d, n: save_dcp(s, d, n, lock=lock), "safe")]
    for i in range(repeats + 2):  # two warm-up rounds
        times = {}
        for fn, where in (pair if i % 2 == 0 else pair[::-1]):  # alternate the order: no first-or-second bias
            dist.barrier()
            t0 = time.perf_counter()
            fn(state, os.path.join(root, where), i)
            times[where] = (time.perf_counter() - t0) * 1e3
        if i >= 2:
            a.append(times["bare"]), b.append(times["safe"]), diff.append(times["safe"] - times["bare"])
        dist.barrier()
        if rank == 0 and i <= repeats:  # outside the timed part: keep the directories small (the last one is kept)
            for where in ("bare", "safe"):
                shutil.rmtree(os.path.join(root, where, f"step_{i:08d}"), ignore_errors=True)
    parts = {}
    for name, fn in (("barrier", dist.barrier), ("verdict", lambda: share_verdict(None)),
                     ("checks", lambda: (lock.verify(), missing_files(last, metadata)) if rank == 0 else None)):
        last = os.path.join(root, "safe", f"step_{repeats + 1:08d}")
        metadata = SafeFileSystemReader(last).read_metadata() if name == "checks" else None
        dist.barrier()
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(100):
                fn()
            runs.append((time.perf_counter() - t0) * 1e3 / 100)
        parts[name] = statistics.median(runs)
    lock.release()
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"bare": statistics.median(a), "safe": statistics.median(b), "added": statistics.median(diff),
                       "state_bytes": len(json.dumps(hook.state_dict())), **parts}, f)
    dist.barrier()
    dist.destroy_process_group()


def world_bench(world, repeats):
    import multiprocessing as mp
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "result.json")
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_world_rank, args=(r, world, port, repeats, d, out)) for r in range(world)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(600)
        res = json.load(open(out))
    print(f"\n| DCP save at world {world} (gloo, 127.0.0.1), tiny LM + AdamW + hook | ms (median) |")
    print("|---|---|")
    print(f"| bare: barrier, dcp.save, barrier, rename, barrier | {res['bare']:.2f} |")
    print(f"| save_dcp: dcp.save with agreement in its planning, verification, lock check, publish | {res['safe']:.2f} |")
    print(f"| added (median of {repeats} paired differences) | {res['added']:+.2f} ({res['safe'] / res['bare']:.3f}x) |")
    print(f"\nparts, ms per call: barrier {res['barrier']:.3f}, publish verdict (one broadcast) {res['verdict']:.3f}, "
          f"rank 0's checks (lock + every storage file) {res['checks']:.3f}; save_dcp's agreement rides in dcp.save's "
          "planning collective, so it makes one broadcast where the bare protocol makes 3 barriers")
    print(f"hook state (one JSON entry): {res['state_bytes']} bytes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--world", type=int, default=4, help="ranks for the save_dcp A/B (0: skip it)")
    args = parser.parse_args()
    main(9 if args.quick else 41)
    if args.world:
        world_bench(args.world, 9 if args.quick else 41)
