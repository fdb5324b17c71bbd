"""Issue 20 part 2 benchmark: what the lr range test adds to an update of train.py's tiny LM.

Per world (gloo, 127.0.0.1; world 1 is one process), train.py's model and AdamW (``find_lr.py``'s flags, its
defaults: 4 layers, width 32, 8 x 16 tokens per rank; FSDP2 over dp) run ``--updates`` updates two ways, in
alternation, from the same weights and optimizer state, on the same batches and lrs: the bare loop (set every
group's lr, forward, loss, backward, ``optimizer.step()``, ``zero_grad()``), and ``lr_range_test`` over the same
lrs (which adds the snapshot, the dp all-reduce of the loss per update, the smoothing, the stop test, the restore
and the suggestion). Ranks are lined up by a barrier before each timed run; rank 0's times; medians over the
rounds (and the best runs). Measured apart, with less noise: the test's own work per update (the same two loops
on a one-weight model, best of 10 x rounds each; at world > 1 it holds the all-reduce) and one snapshot + restore
of the tiny LM and AdamW.

Run: python bench/bench_range_test.py [--quick] [--world 1 2]   (under flock /tmp/mp.lock)
"""
import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore")


def _rank(rank, world, port, updates, rounds, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    import torch
    import torch.distributed as dist

    from colossal_sched.launch import init_distributed
    from colossal_sched.range_test import _Snapshot, lr_range_test, sweep
    from launch_scripts import find_lr, train
    from launch_scripts.tiny_lm import batch

    args = find_lr.parse_args(["--num-updates", str(updates)])
    init_distributed("gloo")
    run = train.build(args)
    batches = [batch(n, run.dp_rank, args.batch, args.seq, args.vocab) for n in range(updates)]
    lrs = sweep(1e-6, 1e-2, updates)  # no divergence: every run takes all the updates
    loss_fn = lambda model, xy: train.lm_loss(model(xy[0]), xy[1])  # noqa: E731

    def bare(model=run.model, opt=run.optimizer, data=batches, fn=loss_fn):
        for lr, xy in zip(lrs, data):
            for g in opt.param_groups:
                g["lr"] = lr
            fn(model, xy).backward()
            opt.step()
            opt.zero_grad()

    def range_test(model=run.model, opt=run.optimizer, data=batches, fn=loss_fn):
        result = lr_range_test(model, opt, data, fn, start_lr=lrs[0], end_lr=lrs[-1], num_updates=updates)
        assert result.updates == updates, result.reason

    def timed(fn, snapshot):
        snapshot.restore()  # both begin at the same weights and optimizer state: the same arithmetic, update by update
        dist.barrier()
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    def alternate(a, b, snapshot, n):
        times = ([], [])
        for k in range(n):
            for i in ((0, 1) if k % 2 == 0 else (1, 0)):
                times[i].append(timed((a, b)[i], snapshot))
        return times

    bare(), range_test()  # warm-up: the optimizer state exists from here on, as in a run
    times = dict(zip(("bare", "range"), alternate(bare, range_test, _Snapshot(run.model, run.optimizer), rounds)))
    # the test's own work per update, alone: the same two loops on a one-weight model (no DDP/FSDP collective)
    one = torch.nn.Linear(1, 1, bias=False)
    sgd = torch.optim.SGD(one.parameters(), lr=0.1, momentum=0.9)
    small = dict(model=one, opt=sgd, data=[None] * updates, fn=lambda m, _: m.weight.sum())
    bare(**small), range_test(**small)
    times["bare_small"], times["range_small"] = alternate(lambda: bare(**small), lambda: range_test(**small),
                                                          _Snapshot(one, sgd), 10 * rounds)
    times["snapshot"] = [timed(lambda: _Snapshot(run.model, run.optimizer).restore(), _Snapshot(one, sgd))
                         for _ in range(5 * rounds)]  # copy and put back the tiny LM's model and AdamW state
    if rank == 0:
        with open(out, "w") as f:
            json.dump(times, f)
    dist.destroy_process_group()


def measure(world, updates, rounds):
    import multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "times")
        procs = [mp.get_context("spawn").Process(target=_rank, args=(r, world, port, updates, rounds, out))
                 for r in range(world)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        with open(out) as f:
            return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 15")
    parser.add_argument("--world", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--updates", type=int, default=100)
    a = parser.parse_args()
    rounds = 5 if a.quick else 15
    print(f"| world | bare update, ms | range test per update, ms | ratio (medians) | ratio (best runs) | the test's own "
          f"work per update, us | snapshot + restore, ms | added to an update: own work + (snapshot + restore) / {a.updates} |")
    print("|---|---|---|---|---|---|---|---|")
    for world in a.world:
        times = measure(world, a.updates, rounds)
        t, best = ({k: f(v) for k, v in times.items()} for f in (statistics.median, min))
        own = (best["range_small"] - best["bare_small"]) / a.updates
        added = (own + t["snapshot"] / a.updates) / (t["bare"] / a.updates)
        print(f"| {world} | {t['bare'] / a.updates * 1e3:.2f} | {t['range'] / a.updates * 1e3:.2f} | "
              f"{t['range'] / t['bare']:.3f}x | {best['range'] / best['bare']:.3f}x | {own * 1e6:.0f} | "
              f"{t['snapshot'] * 1e3:.2f} | {added:.2%} |", flush=True)

if __name__ == "__main__":
    main()
