"""Issue #3 benchmark: hook overhead per step.

1. No sync, one process: our LRSchedulerHook vs colossalai's LRSchedulerHook + scheduler, same trainer calls.
2. Sync every step at world 2/4/8 (gloo, 127.0.0.1): ``hook.step(n)`` (one ``all_to_all_single`` plus the
   checks) vs one bare ``dist.broadcast`` of the same payload, and vs each bare gloo collective in which every
   rank hears from every rank (what a collective verdict needs): ``all_to_all_single`` of the same buffers,
   ``all_gather``, ``all_reduce(MAX)``, ``gather`` then ``broadcast``; same world size, same processes.
3. The same inside a training iteration (lr sync, ~1 ms of compute, ``optimizer.step()``): what a bare
   broadcast, ``hook.step`` and ``hook.step`` with ``overlap=True`` add to the iteration.
4. What rides in the sync at world 2: the clock, ``hook.step(n, samples=..., tokens=...)`` (a schedule counting
   samples, this rank's shares added up in the sync) vs ``hook.step(n)`` (counting updates); and a metric,
   ``hook.step(n, metric=...)`` of a ReduceLROnPlateauLR (reduced over the ranks in the sync, then observed) vs
   ``hook.step(n)`` of the same schedule; rounds interleaved in the same processes; the collectives each step
   issues, counted (shares and metric travel in the sync's one ``all_to_all_single``).

Run: python bench/bench_hook.py [--quick]
"""
import argparse
import os
import socket
import statistics
import sys
import time
import timeit
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import optimizer, per_call_us  # noqa: E402

import colossal_sched as cs  # noqa: E402
from hooks import LRSchedulerHook  # noqa: E402


class Trainer:
    def __init__(self):
        self.states, self.cur_step, self.cur_epoch = {}, 0, 0


def no_sync(calls):
    from colossalai.legacy.trainer.hooks import LRSchedulerHook as ColossalHook
    from colossalai.nn.lr_scheduler import CosineAnnealingWarmupLR

    theirs_trainer, ours_trainer = Trainer(), Trainer()
    theirs = ColossalHook(CosineAnnealingWarmupLR(optimizer(), 10**7, warmup_steps=1000), by_epoch=False)
    theirs.after_hook_is_attached(theirs_trainer)
    ours = LRSchedulerHook(cs.CosineAnnealingWarmupLR(optimizer(), 10**7, warmup_steps=1000), sync=False)
    ours.after_hook_is_attached(ours_trainer)

    def their_iter():
        theirs.before_train_iter(theirs_trainer)
        theirs.after_train_iter(theirs_trainer, None, None, None)
        theirs_trainer.cur_step += 1

    def our_iter():
        ours.before_train_iter(ours_trainer)
        ours.after_train_iter(ours_trainer, None, None, None)
        ours_trainer.cur_step += 1

    t_theirs, t_ours = per_call_us(their_iter, calls), per_call_us(our_iter, calls)
    print("| hook, no sync (1 process) | us per iteration | ratio |\n|---|---|---|")
    print(f"| colossalai LRSchedulerHook + CosineAnnealingWarmupLR | {t_theirs:.2f} | 1.00x |")
    print(f"| colossal_sched LRSchedulerHook + CosineAnnealingWarmupLR | {t_ours:.2f} | {t_ours / t_theirs:.2f}x |\n")


def _compute(x):
    """Stand-in for forward and backward on the CPU (about a millisecond of one core)."""
    for _ in range(4):
        x = torch.tanh(x @ x)
    return x


def _accelerator(x):
    """Stand-in for forward and backward on a GPU: the host waits 5 ms with its core free."""
    time.sleep(0.005)


def _worker(rank, world, port, calls, out):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"tcp://127.0.0.1:{port}",
                            timeout=timedelta(seconds=120))
    hook = LRSchedulerHook(cs.OneCycleLR(optimizer(), 10**7))  # lr and momentum of 4 groups, base lrs, header
    lapped = LRSchedulerHook(cs.OneCycleLR(optimizer(), 10**7), overlap=True)
    b = hook.lr_sync
    pg = b.process_group  # the same gloo group, so the comparison is like for like
    row = torch.zeros(b._row, dtype=torch.int64)  # the payload one rank sends each peer per sync
    send, recv = torch.zeros_like(b._send), torch.zeros_like(b._recv)
    gathered = [torch.zeros_like(row) for _ in range(world)] if rank == 0 else None
    gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor  # torch < 2.13: the latter
    bare = {  # the broadcast, then every collective in which every rank hears from every rank
        "broadcast": lambda n: dist.broadcast(row, src=0, group=pg),
        "all_to_all": lambda n: dist.all_to_all_single(recv, send, group=pg),
        "all_gather": lambda n: gather_single(recv, row, group=pg),
        "all_reduce": lambda n: dist.all_reduce(row, op=dist.ReduceOp.MAX, group=pg),
        "gather+broadcast": lambda n: (dist.gather(row, gathered, dst=0, group=pg), dist.broadcast(recv, src=0, group=pg)),
    }
    plain = cs.OneCycleLR(optimizer(), 10**7)

    def unchecked(n):  # the least a synced hook does: step the schedule, broadcast the source's lrs, write them
        plain.step_to(n)
        lrs = torch.tensor(plain.get_last_lr(), dtype=torch.float64)
        dist.broadcast(lrs, src=0, group=pg)
        for g, lr in zip(plain.optimizer.param_groups, lrs.tolist()):
            g["lr"] = lr

    x = torch.rand(96, 96) / 96
    opt = lapped.lr_scheduler.optimizer

    def iteration(sync, work):  # a training iteration: the lr for update n, forward/backward, the update
        return lambda n: (sync(n), work(x), opt.step())

    syncs = {"none": lambda n: None, "broadcast": bare["broadcast"], "hook": hook.step, "overlap": lapped.step}
    tight, loops = [], {"cpu": [], "gpu": []}
    for r in range(5):
        steps = range(r * calls, (r + 1) * calls)
        tight.append({name: _timed(fn, steps) for name, fn in {**bare, "unchecked": unchecked, "hook": hook.step}.items()})
        for kind, work in (("cpu", _compute), ("gpu", _accelerator)):
            its = range(r * calls // 4, (r + 1) * calls // 4)
            loops[kind].append({name: _timed(iteration(fn, work), its) for name, fn in syncs.items()})
    out[rank] = {"tight": tight, **loops}
    dist.destroy_process_group()


def _clock_worker(rank, world, port, calls, out):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"tcp://127.0.0.1:{port}",
                            timeout=timedelta(seconds=120))
    plain = LRSchedulerHook(cs.CosineAnnealingWarmupLR(optimizer(), 10**7, warmup_steps=1000))
    clocked = LRSchedulerHook(cs.CosineAnnealingWarmupLR(optimizer(), 10**9, warmup_steps=10**5).counting("samples"))
    quiet = LRSchedulerHook(cs.ReduceLROnPlateauLR(optimizer(), 10**7, patience=10**9))
    listening = LRSchedulerHook(cs.ReduceLROnPlateauLR(optimizer(), 10**7, patience=10**9))
    for hook in (plain, clocked, quiet, listening):
        hook.step(0)
    steps = {"plain": lambda n: plain.step(n), "shares": lambda n: clocked.step(n, samples=4 + rank, tokens=64 * (4 + rank)),
             "plateau": lambda n: quiet.step(n), "metric": lambda n: listening.step(n, metric=1.0 + 0.01 * rank)}
    rounds, counts = [], {}
    names = list(steps)
    for r in range(RIDER_ROUNDS):  # short rounds, the four in turn (each round starting with the next): paired ratios
        span = range(1 + r * calls, 1 + (r + 1) * calls)
        rounds.append({name: _timed(steps[name], span) for name in names[r % 4:] + names[:r % 4]})
    start = 1 + RIDER_ROUNDS * calls
    for name, fn in steps.items():  # collectives per step, counted as tests/workers.py CountingCollectives does
        calls_made = []
        saved = {c: getattr(dist, c) for c in COLLECTIVES}
        for c, real in saved.items():
            setattr(dist, c, lambda *a, _real=real, _c=c, **k: (calls_made.append(_c), _real(*a, **k))[1])
        try:
            for n in range(start, start + 100):
                fn(n)
        finally:
            for c, real in saved.items():
                setattr(dist, c, real)
        counts[name] = (len(calls_made) / 100, sorted(set(calls_made)))
    assert clocked.clock.samples == (2 * 4 + 1) * (start + 99), clocked.clock  # every step's shares, summed
    assert listening.lr_scheduler.plateau.metrics == start + 99 and listening.lr_sync.metric == 1.005  # the mean
    own = _metric_work(listening, calls * 20)
    out[rank] = {"rounds": rounds, "counts": counts, "own": own}
    dist.destroy_process_group()


RIDER_ROUNDS = 41

COLLECTIVES = ("broadcast", "all_reduce", "all_to_all_single", "all_gather", "all_gather_object", "broadcast_object_list",
               "barrier", "send", "recv", "isend", "irecv", "reduce", "gather", "scatter", "all_to_all", "reduce_scatter",
               "all_gather_into_tensor")


def _metric_work(hook, calls):
    """Microseconds of what a metric adds to a synced step, in this process: checking it, packing it into the row,
    reducing the table's metric words (against a table without them) and the plateau's observation."""
    from colossal_sched.sync_protocol import _HAS_METRIC, _METRIC, agreed_metric

    table = hook.lr_sync._table.copy()
    table[:, _HAS_METRIC], table[:, _METRIC] = 1, np.float64(1.0).view(np.int64)
    sync, none = hook.lr_sync, hook.lr_sync._table.copy()
    none[:, _HAS_METRIC] = 0
    args = (sync.ranks, sync._i_src, sync._dp_groups, sync.metric_op, sync.nonfinite_metric)
    parts = {"check": lambda: hook._metric(1.0), "pack": lambda: int(np.float64(1.0).view(np.int64)),
             "reduce": lambda: agreed_metric(table, *args), "no metric": lambda: agreed_metric(none, *args),
             "observe": lambda: hook.lr_scheduler.observe(1.0)}
    t = {k: min(timeit.repeat(fn, number=calls, repeat=5)) / calls * 1e6 for k, fn in parts.items()}
    return t["check"] + t["pack"] + t["reduce"] - t["no metric"] + t["observe"]


def clock_shares(calls, world=2):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_clock_worker, args=(world, port, calls, out), nprocs=world, join=True)
    med = {k: statistics.median(rnd[k] for rank in out.values() for rnd in rank["rounds"]) for k in out[0]["counts"]}
    ratio = lambda a, b: statistics.median(rnd[a] / rnd[b] for rank in out.values() for rnd in rank["rounds"])  # noqa: E731
    counts = out[0]["counts"]
    best = {k: min(rnd[k] for rank in out.values() for rnd in rank["rounds"]) for k in out[0]["counts"]}
    print(f"\n| world | what rides in the sync | hook.step(n) us | with it us | ratio (median of rounds) | ratio (best rounds) "
          f"| collectives per step (without / with) |\n|---|---|---|---|---|---|---|")
    for what, base, ride in (("the clock: samples=, tokens= (vs counting updates)", "plain", "shares"),
                             ("a metric: metric= (ReduceLROnPlateauLR)", "plateau", "metric")):
        print(f"| {world} | {what} | {med[base]:.1f} | {med[ride]:.1f} | {ratio(ride, base):.3f}x | {best[ride] / best[base]:.3f}x "
              f"| {counts[base][0]:g} {counts[base][1]} / {counts[ride][0]:g} {counts[ride][1]} |")
    own = statistics.median(rank["own"] for rank in out.values())
    print(f"\nthe metric's own work per step, measured apart (check, pack, reduce, observe; best of 5): {own:.1f} us, "
          f"{own / med['plateau']:.1%} of a sync without it")
    print(f"medians over {RIDER_ROUNDS} rounds x {calls} steps x every rank (gloo, 127.0.0.1), the four hooks timed in "
          "turn in the same processes, the ratio the median of each round's; collectives counted over 100 more steps")


def _timed(fn, steps):
    """Microseconds per call of ``fn(n)`` over ``steps``, every rank starting together."""
    dist.barrier()
    t0 = time.perf_counter()
    for n in steps:
        fn(n)
    return (time.perf_counter() - t0) / len(steps) * 1e6


FLOOR = ("broadcast", "all_to_all", "all_gather", "all_reduce", "gather+broadcast")


def with_sync(worlds, calls):
    tight_rows, loop_rows = [], []
    for world in worlds:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        out = mp.Manager().dict()
        mp.spawn(_worker, args=(world, port, calls, out), nprocs=world, join=True)
        med = lambda kind, k: statistics.median(rnd[k] for rank in out.values() for rnd in rank[kind])  # noqa: E731
        t = {k: med("tight", k) for k in (*FLOOR, "unchecked", "hook")}
        tight_rows.append(f"| {world} | {t['broadcast']:.1f} | " + " | ".join(
            f"{t[k]:.1f} ({t[k] / t['broadcast']:.2f}x)" for k in (*FLOOR[1:], "unchecked")) +
            f" | {t['hook']:.1f} | {t['hook'] / t['broadcast']:.2f}x | {t['hook'] / t['all_to_all']:.2f}x |")
        for kind, label in (("cpu", "CPU compute"), ("gpu", "host idle (GPU compute)")):
            lp = {k: med(kind, k) for k in ("none", "broadcast", "hook", "overlap")}
            add = {k: lp[k] - lp["none"] for k in ("broadcast", "hook", "overlap")}
            loop_rows.append(f"| {world} | {label} | {lp['none']:.1f} | {add['broadcast']:.1f} | {add['hook']:.1f} "
                             f"| {add['overlap']:.1f} | {add['hook'] / add['broadcast']:.2f}x "
                             f"| {add['overlap'] / add['broadcast']:.2f}x |")
    print("| world | bare dist.broadcast of the payload us | " + " | ".join(f"bare {k} us" for k in FLOOR[1:])
          + " | step_to + broadcast, no checks us | hook.step with sync us | vs broadcast | vs all_to_all |\n|---|"
          + "---|" * (len(FLOOR) + 4))
    print("\n".join(tight_rows))
    print(f"\nmedians over 5 rounds x {calls} steps x every rank; payload: one int64 row of the sync table per peer "
          "(all_to_all: one per peer); gather+broadcast is two collectives; 'no checks': step the schedule, broadcast "
          "its lrs from rank 0, write them (what a sync hook does before any check)\n")
    print("| world | forward/backward | iteration without lr sync us | added by a bare broadcast us | added by hook.step us "
          "| added by hook.step(overlap=True) us | hook vs broadcast | overlap vs broadcast |\n|---|---|---|---|---|---|---|---|")
    print("\n".join(loop_rows))
    print(f"\niteration: the lr sync, a forward/backward stand-in (CPU: about 1 ms of tanh(x @ x) on one core; "
          f"GPU: the host sleeps 5 ms, its core free), optimizer.step(); "
          f"medians over 5 rounds x {calls // 4} iterations x every rank")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clock-only", action="store_true", help="only measurement 4 (the clock's shares, a metric)")
    args = parser.parse_args()
    if args.clock_only:
        clock_shares(40 if args.quick else 150)
        sys.exit(0)
    no_sync(5000 if args.quick else 20000)
    with_sync([2, 4] if args.quick else [2, 4, 8], 200 if args.quick else 1000)
    clock_shares(40 if args.quick else 150)
