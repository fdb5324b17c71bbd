#!/usr/bin/env python
r"""The lr range test (``colossal_sched.lr_range_test``) on train.py's tiny LM: the lr grows from --start-lr to
--end-lr over --num-updates updates (or until the loss diverges), the loss averaged over every rank; rank 0 prints
the curve and the suggested lr (steepest descent of the smoothed loss) and draws it with --plot. The model and
the optimizer end as they started. The model, mesh and data flags are train.py's (--pp 1 only)::

    torchrun --standalone --nproc_per_node 2 launch_scripts/find_lr.py --start-lr 1e-5 --end-lr 1 --plot lr_range.png

``colossal-sched find-lr --nproc-per-node 2 [flags]`` runs this command.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from colossal_sched.launch import init_distributed  # noqa: E402
from colossal_sched.range_test import MAX_UPDATES, MODES, RangeTestResult, lr_range_test, plot_range_test  # noqa: E402
from launch_scripts import train  # noqa: E402
from launch_scripts.tiny_lm import batch  # noqa: E402

#: train.py's flags the range test has no use for: hidden from --help, refused when given
TRAINING_ONLY = ("pp", "microbatches", "scheduler", "clock", "total_steps", "warmup_steps", "lr", "wd_schedule", "end_wd",
                 "scheduler_arg", "ckpt_dir", "save_every", "resume", "on_mismatch", "lr_log", "stop_at", "replan",
                 "sync_every", "rampup_batch_size", "ckpt_lock_lease")


def parser() -> argparse.ArgumentParser:
    p = train.parser()
    p.description = __doc__
    for action in p._actions:
        if action.dest in TRAINING_ONLY:
            action.help = argparse.SUPPRESS
    g = p.add_argument_group("the range test")
    g.add_argument("--start-lr", type=float, default=1e-6, help="the sweep's first lr")
    g.add_argument("--end-lr", type=float, default=1.0, help="the sweep's last lr (> --start-lr)")
    g.add_argument("--num-updates", type=int, default=100, help="the sweep's length in optimizer updates (>= 2)")
    g.add_argument("--mode", choices=MODES, default="exp", help="exp: geometric lr steps; linear: equal ones")
    g.add_argument("--plot", default=None, metavar="FILE.png", help="draw the smoothed loss over the lr, the suggestion marked")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """train.py's checks, then the sweep's (each refusal one line, status 2, before any process group exists)."""
    p = parser()
    args = p.parse_args(argv)
    for name in TRAINING_ONLY:
        if getattr(args, name) != p.get_default(name):
            p.error(f"--{name.replace('_', '-')} is a training flag: the range test takes the model, mesh and data flags")
    if not 0 < args.start_lr < args.end_lr < float("inf"):
        p.error(f"--start-lr and --end-lr must be finite with 0 < --start-lr < --end-lr, got {args.start_lr} and "
                f"{args.end_lr}")
    if not 2 <= args.num_updates <= MAX_UPDATES:
        p.error(f"--num-updates must be an int in [2, {MAX_UPDATES}], got {args.num_updates}")
    return train.parse_args(argv, p)  # the model, mesh and data flags


def main(argv: list[str] | None = None) -> int:
    """Parse, join the job, build train.py's model and optimizer, sweep, report, leave."""
    args = parse_args(argv)
    init_distributed(args.backend)
    run = train.build(args)
    data = ((x.to(run.device), y.to(run.device)) for x, y in
            (batch(n, run.dp_rank, args.batch, args.seq, args.vocab) for n in range(args.num_updates)))
    start = time.perf_counter()
    result = lr_range_test(run.model, run.optimizer, data, lambda model, xy: train.lm_loss(model(xy[0]), xy[1]),
                           start_lr=args.start_lr, end_lr=args.end_lr, num_updates=args.num_updates, mode=args.mode)
    seconds = time.perf_counter() - start
    if dist.get_rank() == 0:
        report(result, args, seconds)
    if args.plot:
        plot_range_test(result, args.plot)  # rank 0 writes
    dist.barrier()
    dist.destroy_process_group()
    return 0


def report(result: RangeTestResult, args: argparse.Namespace, seconds: float) -> None:
    """The curve every --log-every updates, how the sweep ended and the suggestion."""
    for n, (lr, loss, smooth) in enumerate(zip(result.lrs, result.losses, result.smoothed)):
        if args.log_every and (n % args.log_every == 0 or n == result.updates - 1):
            print(f"update {n:4d}  lr {lr:.3e}  loss {loss:.4f}  smoothed {smooth:.4f}", flush=True)
    world = dist.get_world_size()
    print(f"{result.updates} updates on {world} rank{'s' * (world > 1)} in {seconds:.2f} s: {result.reason}; model and "
          f"optimizer restored", flush=True)
    print(f"suggested lr: {result.suggestion:.3e}" if result.suggestion is not None else f"no suggestion: {result.note}")
    if args.plot:
        print(f"wrote {args.plot}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
