"""Issue #3 benchmark: hook overhead per step.

1. No sync, one process: our LRSchedulerHook vs colossalai's LRSchedulerHook + scheduler, same trainer calls.
2. Sync every step at world 2/4/8 (gloo, 127.0.0.1): ``hook.step(n)`` (one ``all_to_all_single`` plus the
   checks) vs one bare ``dist.broadcast`` of the same payload and one bare ``all_to_all_single`` of the same
   buffers, at the same world size, in the same processes.

Run: python bench/bench_hook.py [--quick]
"""
import argparse
import os
import socket
import statistics
import sys
import time
from datetime import timedelta

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


def _worker(rank, world, port, calls, out):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"tcp://127.0.0.1:{port}",
                            timeout=timedelta(seconds=120))
    hook = LRSchedulerHook(cs.OneCycleLR(optimizer(), 10**7))  # lr and momentum of 4 groups, base lrs, header
    b = hook.broadcaster
    pg = b.process_group  # the same gloo group, so the comparison is like for like
    row = torch.zeros(b._row, dtype=torch.int64)  # the payload one rank sends each peer per sync
    send, recv = torch.zeros_like(b._send), torch.zeros_like(b._recv)
    baselines = {
        "broadcast": lambda: dist.broadcast(row, src=0, group=pg),
        "all_to_all": lambda: dist.all_to_all_single(recv, send, group=pg),
    }
    rounds = []
    for r in range(5):
        got = {}
        for name, fn in baselines.items():
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            got[name] = (time.perf_counter() - t0) / calls * 1e6
        dist.barrier()
        t0 = time.perf_counter()
        for n in range(r * calls, (r + 1) * calls):
            hook.step(n)
        got["hook"] = (time.perf_counter() - t0) / calls * 1e6
        rounds.append(got)
    out[rank] = rounds
    dist.destroy_process_group()


def with_sync(worlds, calls):
    print("| world | bare dist.broadcast of the payload us | bare all_to_all_single us | hook.step with sync us "
          "| vs broadcast | vs all_to_all |\n|---|---|---|---|---|---|")
    for world in worlds:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        out = mp.Manager().dict()
        mp.spawn(_worker, args=(world, port, calls, out), nprocs=world, join=True)
        med = {k: statistics.median(rnd[k] for rank in out.values() for rnd in rank) for k in ("broadcast", "all_to_all", "hook")}
        print(f"| {world} | {med['broadcast']:.1f} | {med['all_to_all']:.1f} | {med['hook']:.1f} "
              f"| {med['hook'] / med['broadcast']:.2f}x | {med['hook'] / med['all_to_all']:.2f}x |")
    print(f"\nmedians over 5 rounds x {calls} steps x every rank; payload: one int64 row of the sync table per peer")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    no_sync(5000 if args.quick else 20000)
    with_sync([2, 4] if args.quick else [2, 4, 8], 200 if args.quick else 1000)
