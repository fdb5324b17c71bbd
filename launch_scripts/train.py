#!/usr/bin/env python
r"""Train a tiny transformer LM with colossal_sched's LRSchedulerHook over a dp x pp x tp DeviceMesh.

torch's own parallelism: FSDP2 (``fully_shard``) over dp, ``torch.distributed.tensor.parallel``
over tp, ``torch.distributed.pipelining`` (GPipe) over pp; gloo on CPU, NCCL on GPU. Checkpoints
are torch.distributed.checkpoint directories holding model, optimizer and the hook's state, and
resume on any world size. Launch with torchrun, e.g.::

    torchrun --standalone --nproc_per_node 4 launch_scripts/train.py --tp 2 --ckpt-dir runs/ckpt  # --dp auto: 2

The schedule counts optimizer updates, or with ``--clock samples``/``--clock tokens`` the samples/tokens consumed
(summed over the dp ranks by the hook's sync), so that a batch-size ramp (``--rampup-batch-size``, Megatron's) does
not shift where warmup and decay end::

    torchrun --standalone --nproc_per_node 2 launch_scripts/train.py --clock samples --total-steps 960 --warmup-steps 96 \
        --rampup-batch-size 4 4 256  # the global batch grows 4, 8, 12, 16 (--batch 8 x --dp 2)
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from colossal_sched import SCHEDULERS, ComposedLR, build_lr_scheduler  # noqa: E402
from colossal_sched.clock import UNITS  # noqa: E402
from colossal_sched.ramp import BatchRamp  # noqa: E402
from colossal_sched.state import read_state  # noqa: E402
from colossal_sched.cli import UsageError, parse_params, parse_replan  # noqa: E402
from colossal_sched.checkpoint import (on_mismatch_arg, CheckpointError, RunLock, SafeFileSystemReader, SafeLoadPlanner,  # noqa: E402
                                       agree_on_checkpoint, latest_checkpoint, read_dcp_state, restore, save_dcp, world_layout)
from colossal_sched.launch import init_distributed  # noqa: E402
from colossal_sched.errors import ResumeChoiceError, ScheduleMismatchError  # noqa: E402
from hooks import LRSchedulerHook  # noqa: E402
from launch_scripts.faults import FaultPoints  # noqa: E402
from launch_scripts.tiny_lm import Stage, batch, stage_layers, tensor_parallel_plan  # noqa: E402


WEIGHT_DECAY = 0.01  # the decay group's (the other group's is 0)

#: what --scheduler offers: every scheduler but those user functions decide (not ``rebuildable``), which a command line cannot give
CLI_SCHEDULERS = sorted(name for name, cls in SCHEDULERS.items() if cls.rebuildable)


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr, printed by rank 0 only (every rank parses the same argv and
    refuses alike, before any process group exists), and exit status 2. Under torchrun the other ranks
    exit only once rank 0 has printed (a mark in torchrun's own store), since torchrun stops every
    worker as soon as one exits."""

    def error(self, message: str) -> None:  # type: ignore[override]
        rank0 = os.environ.get("RANK", "0") == "0"
        if rank0:
            print(f"{self.prog}: error: {message}", file=sys.stderr, flush=True)
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            try:
                store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                                      timeout=timedelta(seconds=30))
                key = f"colossal_sched/usage_error/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
                if rank0:
                    store.set(key, "printed")
                else:
                    store.wait([key])
            except Exception:  # no store to reach: exit all the same
                pass
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    """The flags (the fault points of the tests are environment variables, never flags: launch_scripts/faults.py)."""
    p = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dp", type=_dp_size, default=None,
                   help="data-parallel size (FSDP2); default auto: the world size / (pp * tp), also for elastic jobs")
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel size")
    p.add_argument("--pp", type=int, default=1, help="pipeline-parallel size (GPipe)")
    p.add_argument("--scheduler", default="CosineAnnealingWarmupLR", choices=CLI_SCHEDULERS)
    p.add_argument("--clock", default="updates", choices=UNITS,
                   help="what the schedule counts: optimizer updates, or the samples or tokens consumed (every dp "
                        "rank's summed); --total-steps, --warmup-steps and the other lengths are in the clock's unit")
    p.add_argument("--total-steps", type=int, default=60, help="the schedule's length (lengths in the clock's unit)")
    p.add_argument("--warmup-steps", type=int, default=None,
                   help="for schedulers that take warmup_steps (default 6; lengths in the clock's unit); an error "
                        "for the others")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--wd-schedule", default=None, choices=("constant", "linear", "cosine"),
                   help="schedule the weight decay too (Megatron's --weight-decay-incr-style): from each group's own "
                        f"(decay group {WEIGHT_DECAY}) to --end-wd times it over the run, with the lr's clock")
    p.add_argument("--end-wd", type=float, default=None, help="the decay group's final weight decay (with --wd-schedule)")
    p.add_argument("--scheduler-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="more scheduler arguments, e.g. --scheduler-arg eta_min=1e-5 --scheduler-arg milestones=[20,40]")
    p.add_argument("--ckpt-dir", default=None, help="directory of step_XXXXXXXX DCP checkpoints")
    p.add_argument("--save-every", type=int, default=0, help="checkpoint every N updates (0: never)")
    p.add_argument("--resume", action="store_true",
                   help="say so when --ckpt-dir holds no complete checkpoint (the newest one is always resumed from)")
    p.add_argument("--on-mismatch", default="raise", type=on_mismatch_arg,
                   help="when the checkpoint's schedule differs: raise, use_checkpoint, use_current, or per field, e.g. "
                        "'checkpoint=step,samples;current=total_steps' (add ';swap' to swap a new length in, not re-plan)")
    p.add_argument("--lr-log", default=None, metavar="FILE", help='JSON lines {"step", "rank", "lr"}, one per update per rank')
    p.add_argument("--stop-at", type=int, default=None, help="stop after this many updates (default: --total-steps)")
    p.add_argument("--replan", type=parse_replan, default=None, metavar="STEP:TOTAL",
                   help="at update STEP, re-plan the schedule to end at TOTAL (on every rank, in one sync; kept in checkpoints)")
    p.add_argument("--sync-every", type=int, default=1, help="broadcast rank 0's lr on updates divisible by this")
    p.add_argument("--batch", type=int, default=8,
                   help="sequences per update per data-parallel rank (the global batch: --batch x --dp)")
    p.add_argument("--rampup-batch-size", type=int, nargs=3, default=None, metavar=("START", "INCREMENT", "RAMP_SAMPLES"),
                   help="Megatron's batch-size ramp: the global batch grows from START by INCREMENT over RAMP_SAMPLES "
                        "consumed samples to --batch x --dp, each dp rank taking an equal share")
    p.add_argument("--seq", type=int, default=16, help="tokens per sequence")
    p.add_argument("--vocab", type=int, default=64, help="vocabulary size")
    p.add_argument("--dim", type=int, default=32, help="model width")
    p.add_argument("--heads", type=int, default=4, help="attention heads (divisible by --tp)")
    p.add_argument("--layers", type=int, default=4, help="transformer blocks (at least --pp)")
    p.add_argument("--microbatches", type=int, default=2, help="pipeline micro-batches per update (with --pp > 1)")
    p.add_argument("--log-every", type=int, default=5, help="print step, loss and lr every N updates (0: never)")
    p.add_argument("--backend", default="auto", choices=("auto", "gloo", "nccl"), help="auto: nccl with CUDA, else gloo")
    p.add_argument("--ckpt-lock-lease", type=float, default=300.0, metavar="SECONDS",
                   help="a --ckpt-dir lock without heartbeat for this long is stale (another run may take it over)")
    return p


def parse_args(argv: list[str] | None = None, p: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """The flags of ``p`` (default :func:`parser`), each bad value refused on one line (status 2) before any group."""
    p = parser() if p is None else p
    args = p.parse_args(argv)
    try:
        args.scheduler_kwargs = parse_params(args.scheduler_arg, "--scheduler-arg")
    except UsageError as e:
        p.error(str(e))
    for name in ("dp", "tp", "pp", "total_steps", "microbatches", "layers", "sync_every", "batch", "seq", "vocab", "dim",
                 "heads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be an int >= 1, got {getattr(args, name)}")
    for name in ("save_every", "log_every"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be an int >= 0 (0: never), got {getattr(args, name)}")
    if not 0 < args.lr < float("inf"):
        p.error(f"--lr must be a finite number > 0, got {args.lr}")
    mesh_sizes(p, args)
    args.ramp = batch_ramp(p, args)
    args.updates = run_updates(p, args)
    check_schedule(p, args)
    if args.layers < args.pp:
        p.error(f"--layers ({args.layers}) must be >= --pp ({args.pp})")
    if args.heads % args.tp or args.dim % args.heads:
        p.error(f"--heads ({args.heads}) must divide by --tp ({args.tp}) and --dim ({args.dim}) by --heads")
    if (args.save_every or args.resume) and not args.ckpt_dir:
        p.error("--save-every and --resume need --ckpt-dir")
    if not 0 < args.ckpt_lock_lease < float("inf"):
        p.error(f"--ckpt-lock-lease must be a number of seconds > 0, got {args.ckpt_lock_lease}")
    return args


def mesh_sizes(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--dp`` (auto: the world size / (pp * tp)) x ``--pp`` x ``--tp`` must be the world size (``WORLD_SIZE``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    processes = f"the number of processes{' torchrun starts' if 'RANK' in os.environ else ': 1 without torchrun'}"
    if args.dp is None and world % (args.pp * args.tp):
        p.error(f"--dp auto: the world size {world} ({processes}) does not divide by --pp {args.pp} x --tp {args.tp} "
                f"= {args.pp * args.tp}; pass --dp, --pp and --tp whose product is {world}")
    if args.dp is None:
        args.dp = world // (args.pp * args.tp)
    if args.dp * args.pp * args.tp != world:
        p.error(f"--dp {args.dp} x --pp {args.pp} x --tp {args.tp} = {args.dp * args.pp * args.tp} must equal the world "
                f"size {world} ({processes})")


def batch_ramp(p: argparse.ArgumentParser, args: argparse.Namespace) -> BatchRamp | None:
    """``--rampup-batch-size`` as a :class:`BatchRamp` to the global batch ``--batch`` x ``--dp`` (None: no ramp);
    ``--clock samples``/``tokens`` and the ramp need the shares added up in every sync (``--sync-every 1``)."""
    if args.clock != "updates" and args.sync_every != 1:
        p.error(f"--clock {args.clock} needs --sync-every 1 (every sync adds up the dp ranks' samples), "
                f"got --sync-every {args.sync_every}")
    if args.rampup_batch_size is None:
        return None
    text = "--rampup-batch-size " + " ".join(map(str, args.rampup_batch_size))
    if args.pp > 1:
        p.error(f"{text}: needs --pp 1 (the pipeline splits a fixed batch into --microbatches)")
    if args.sync_every != 1:
        p.error(f"{text}: needs --sync-every 1 (every sync adds up the dp ranks' samples), got {args.sync_every}")
    try:
        ramp = BatchRamp(*args.rampup_batch_size, args.batch * args.dp)
    except (ValueError, TypeError) as e:
        p.error(f"{text}: {str(e).splitlines()[0]} (global_batch_size: --batch {args.batch} x --dp {args.dp})")
    if ramp.start % args.dp or ramp.increment % args.dp:
        p.error(f"{text}: START and INCREMENT must be multiples of --dp {args.dp} (each dp rank takes an equal share)")
    return ramp


def run_updates(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The updates the run trains: the schedule's end (--total-steps, or TOTAL of --replan) in updates, or the
    updates that consume that many samples/tokens (the ramp's batches, else --batch x --dp each)."""
    if args.replan and args.clock != "updates":
        p.error(f"--replan counts updates: it needs --clock updates, got --clock {args.clock}")
    end = args.replan[1] if args.replan else args.total_steps
    if args.clock != "updates":
        g = args.batch * args.dp
        samples = end if args.clock == "samples" else -(-end // args.seq)
        end = (args.ramp or BatchRamp(g, 1, 0, g)).updates_to(samples)
    if args.stop_at is not None and not 1 <= args.stop_at <= end:
        p.error(f"--stop-at must be an int in [1, {end}] (the updates of --total-steps, or TOTAL of --replan), "
                f"got {args.stop_at}")
    return end


def _dp_size(text: str) -> int | None:
    """``--dp``: a positive int, or ``auto`` (None until the world size is read)."""
    try:
        return None if text == "auto" else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 1 or 'auto', got {text!r}") from None


def build_scheduler(args: argparse.Namespace, optimizer: torch.optim.Optimizer):
    config = {"type": args.scheduler, "total_steps": args.total_steps, **args.scheduler_kwargs}
    if "warmup_steps" in SCHEDULERS[args.scheduler].hyperparams and "warmup_steps" not in config:
        config["warmup_steps"] = 6 if args.warmup_steps is None else args.warmup_steps
    sched = build_lr_scheduler(config, optimizer).counting(args.clock)
    if args.wd_schedule is None:
        return sched
    ratio = (WEIGHT_DECAY if args.end_wd is None else args.end_wd) / WEIGHT_DECAY  # each group ends at ratio x its own
    shape = [{"type": "constant"}] if args.wd_schedule == "constant" else [
        {"type": "product", "factors": [{"type": args.wd_schedule, "end_lr": ratio}]}]
    wd = ComposedLR.for_key("weight_decay", optimizer, args.total_steps, shape).counting(args.clock)
    return sched.add_schedules(wd)


def check_schedule(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse conflicting schedule flags, and build the schedule on a stand-in optimizer (the same two
    named groups) so that a bad value is one line before any process starts training."""
    takes_warmup = "warmup_steps" in SCHEDULERS[args.scheduler].hyperparams
    for key, flag in (("total_steps", "--total-steps"), ("warmup_steps", "--warmup-steps"), ("last_epoch", "--ckpt-dir")):
        if key in args.scheduler_kwargs and (key != "warmup_steps" or args.warmup_steps is not None):
            p.error(f"--scheduler-arg {key}={args.scheduler_kwargs[key]!r}: give it with {flag} instead")
    if args.warmup_steps is not None and not takes_warmup:
        p.error(f"--warmup-steps: {args.scheduler} takes no warmup_steps (schedulers that do: "
                f"{', '.join(n for n in CLI_SCHEDULERS if 'warmup_steps' in SCHEDULERS[n].hyperparams)})")
    if args.end_wd is not None and (args.wd_schedule is None or args.end_wd < 0):
        p.error(f"--end-wd {args.end_wd}: give a weight decay >= 0 together with --wd-schedule")
    stand_in = torch.optim.AdamW(param_groups(torch.nn.Linear(1, 1), args.lr), lr=args.lr)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the real build warns, once per rank
            sched = build_scheduler(args, stand_in)
    except (ValueError, TypeError) as e:
        p.error(f"--scheduler {args.scheduler}: {str(e).splitlines()[0]}")
    if args.replan:
        try:
            sched.replan(args.replan[1], at_step=args.replan[0])
        except (ValueError, TypeError) as e:
            p.error(f"--replan {args.replan[0]}:{args.replan[1]}: {str(e).splitlines()[0]}")


def param_groups(model: torch.nn.Module, lr: float) -> list[dict]:
    """Named groups, so stages holding different parameters still match up in the lr broadcast."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "pos" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "pos" not in n)]
    return [{"params": decay, "lr": lr, "weight_decay": WEIGHT_DECAY, "name": "decay"},
            {"params": rest, "lr": lr, "weight_decay": 0.0, "name": "no_decay"}]


class RunRefused(Exception):
    """What every rank refuses alike (the checkpoint lock, a changed schedule): rank 0 prints it, all exit ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Run:
    """What one rank trains: its mesh coordinates, its stage of the model, the optimizer and the hook."""

    mesh: Any
    device: torch.device
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    hook: LRSchedulerHook
    pipeline: Any  # the GPipe schedule with --pp > 1, else None
    dp_rank: int
    pp_rank: int
    state_options: Any = None  # StateDictOptions for the model and optimizer state in checkpoints


def main(argv: list[str] | None = None) -> int:
    """The recipe: parse, join the job, take the checkpoint lock, build, resume, train, leave."""
    args = parse_args(argv)
    init_distributed(args.backend)  # each torchrun attempt on a store of its own (see colossal_sched.launch)
    if dist.get_rank() != 0:  # what every rank would say alike (e.g. the resume choice) is said by rank 0 only
        logging.getLogger("colossal_sched").setLevel(logging.ERROR)
    try:
        lock = take_lock(args)
        run = build(args)
        start = resume(args, run)
        train(args, run, start, lock)
    except RunRefused as e:  # on every rank (one collective decided it), so every rank exits
        if dist.get_rank() == 0:
            print(f"error: {e}", file=sys.stderr, flush=True)
        dist.destroy_process_group()
        return e.status
    dist.barrier()
    if lock is not None:
        lock.release()
    dist.destroy_process_group()
    return 0


def take_lock(args: argparse.Namespace) -> RunLock | None:
    """One run per checkpoint directory, taken before any checkpoint is read or written (released at exit)."""
    if not args.ckpt_dir:
        return None
    try:
        return RunLock(args.ckpt_dir, lease_s=args.ckpt_lock_lease).acquire()
    except CheckpointError as e:
        raise RunRefused(1, str(e)) from None


def build(args: argparse.Namespace) -> Run:
    """This rank's stage of the model on a dp x pp x tp mesh (FSDP2 over dp, tensor parallel over tp), its
    optimizer with two named param groups, the schedule and the hook."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions
    from torch.distributed.device_mesh import init_device_mesh

    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
        torch.set_num_threads(1)
    mesh = init_device_mesh(device.type, (args.dp, args.pp, args.tp), mesh_dim_names=("dp", "pp", "tp"))
    pp_rank = mesh["pp"].get_local_rank()
    model = Stage(args.vocab, args.dim, args.heads, args.layers, stage_layers(args.layers, args.pp, pp_rank), args.seq)
    model = model.to(device)
    if args.tp > 1:
        from torch.distributed.tensor.parallel import parallelize_module

        for block in model.blocks.values():
            parallelize_module(block, mesh["tp"], tensor_parallel_plan())
    if args.dp > 1:
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks.values():
            fully_shard(block, mesh=mesh["dp"])
        fully_shard(model, mesh=mesh["dp"])
    optimizer = torch.optim.AdamW(param_groups(model, args.lr), lr=args.lr)
    hook = LRSchedulerHook(build_scheduler(args, optimizer), group=mesh, sync_every=args.sync_every)
    pipeline = None
    if args.pp > 1:
        from torch.distributed.pipelining import PipelineStage, ScheduleGPipe

        stage = PipelineStage(model, pp_rank, args.pp, device, group=mesh["pp"].get_group())
        pipeline = ScheduleGPipe(stage, args.microbatches, loss_fn=lm_loss)
    return Run(mesh, device, model, optimizer, hook, pipeline, mesh["dp"].get_local_rank(), pp_rank,
               StateDictOptions(flatten_optimizer_state_dict=True))


def resume(args: argparse.Namespace, run: Run) -> int:
    """The step to start at: the newest complete checkpoint's (model, optimizer, schedule), else 0. Always
    looked for with --ckpt-dir: a torchrun restart must continue where the last attempt saved."""
    if not args.ckpt_dir:
        return 0
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    rank = dist.get_rank()
    ckpt = agree_on_checkpoint(latest_checkpoint(args.ckpt_dir, max_step=FaultPoints(rank).listing_limit()))
    if ckpt is None:
        if rank == 0 and args.resume:
            print(f"no complete checkpoint in {args.ckpt_dir}: starting from step 0", flush=True)
        return 0
    model_sd, optim_sd = get_state_dict(run.model, run.optimizer, options=run.state_options)
    dcp.load({"model": model_sd, "optimizer": optim_sd}, storage_reader=SafeFileSystemReader(ckpt),
             planner=SafeLoadPlanner())
    set_state_dict(run.model, run.optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd,
                   options=run.state_options)
    saved = read_state(read_dcp_state(ckpt))
    unit = saved.fields.get("unit", "updates") if saved.native else "updates"
    if unit != args.clock:  # whatever --on-mismatch says: the lengths would be read in another unit
        raise RunRefused(2, f"{ckpt}: the checkpoint's schedule counts {unit}, this run --clock {args.clock}; "
                            f"resume with --clock {unit}")
    try:
        restore(run.hook, saved, args.on_mismatch)
    except ScheduleMismatchError as e:  # every rank compares the same checkpoint with the same flags
        hint = "pass --on-mismatch use_checkpoint or --on-mismatch use_current to choose one"
        raise RunRefused(2, f"{ckpt}: {ScheduleMismatchError(e.fields, hint=hint)}") from None
    except ResumeChoiceError as e:  # likewise: an ambiguous --on-mismatch, refused on every rank
        raise RunRefused(2, f"{ckpt}: {e}") from None
    if rank == 0:
        print(f"resumed from {ckpt} at step {run.hook.global_step} on {dist.get_world_size()} ranks (dp={args.dp} "
              f"pp={args.pp} tp={args.tp}); next update's lr {named_lrs(run.hook)}", flush=True)
    return run.hook.global_step


def train(args: argparse.Namespace, run: Run, start: int, lock: RunLock | None) -> None:
    """Updates ``start`` .. the stop: the hook puts every rank on ``lr_at(n)``, then forward, backward, step;
    the re-plan at its update, a log line and a checkpoint every so many updates."""
    hook, rank = run.hook, dist.get_rank()
    replan = args.replan if args.replan and args.replan not in hook.lr_scheduler.replans else None  # not yet applied
    if replan and start > replan[0]:  # resumed past STEP from a checkpoint saved before the re-plan
        hook.replan(replan[1], at_step=replan[0])
        replan = None
    log = open(args.lr_log, "a", buffering=1) if args.lr_log else None
    stop = min(args.stop_at or args.updates, args.updates)
    shares = args.sync_every == 1  # what each update consumed: added up over the dp ranks in every sync
    faults = FaultPoints(rank)
    lrs = hook.step(start)
    for n in range(start, stop):
        faults.before_update(n)
        if replan and n == replan[0]:
            hook.replan(replan[1])  # from this update on (its lr is unchanged): every rank, one sync
            replan = None
        if log is not None:
            wd = {"wd": [g["weight_decay"] for g in run.optimizer.param_groups]} if args.wd_schedule else {}
            log.write(json.dumps({"step": n, "rank": rank, "lr": lrs, **wd}) + "\n")
        loss, samples = update(args, run, n, local_batch(args, run))
        if args.log_every and (n + 1) % args.log_every == 0:
            report(n, loss, lrs, run.mesh, args)
        lrs = hook.step(n + 1, samples=samples if shares else None, tokens=samples * args.seq if shares else None)
        if args.save_every and (n + 1) % args.save_every == 0:
            save(args, run, n + 1, lock, faults)
    if log is not None:
        log.close()
    if rank == 0:
        print(f"done: {stop} updates; next update's lr {named_lrs(hook)}", flush=True)


def local_batch(args: argparse.Namespace, run: Run) -> int:
    """This dp rank's sequences for the next update: ``--batch``, or its share of the ramp's global batch at the
    samples consumed so far (the hook's clock, every dp rank's summed)."""
    if args.ramp is None:
        return args.batch
    return args.ramp.batch_size(run.hook.clock.samples) // args.dp


def update(args: argparse.Namespace, run: Run, n: int, size: int) -> tuple[torch.Tensor | None, int]:
    """Forward, backward and the optimizer step of update ``n`` on ``size`` sequences; the loss where this
    stage computes it, and this rank's share of the samples (every stage and tp rank of a dp rank reports it)."""
    x, y = batch(n, run.dp_rank, size, args.seq, args.vocab)
    x, y = x.to(run.device), y.to(run.device)
    loss = None
    if run.pipeline is None:
        loss = lm_loss(run.model(x), y)
        loss.backward()
    elif run.pp_rank == 0:
        run.pipeline.step(x)
    elif run.pp_rank == args.pp - 1:
        losses: list[torch.Tensor] = []
        run.pipeline.step(target=y, losses=losses)
        loss = torch.stack(losses).mean()
    else:
        run.pipeline.step()
    run.optimizer.step()
    run.optimizer.zero_grad()
    return loss, size


def save(args: argparse.Namespace, run: Run, done: int, lock: RunLock | None, faults: FaultPoints) -> None:
    """The checkpoint of a run that has done ``done`` updates: model, optimizer, the hook's state, the layout."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    run.hook.step(done)  # the state of a run that has done `done` updates (train() stepped there: a no-op)
    model_sd, optim_sd = get_state_dict(run.model, run.optimizer, options=run.state_options)
    layout = world_layout({"dp": args.dp, "pp": args.pp, "tp": args.tp})
    path = save_dcp({"model": model_sd, "optimizer": optim_sd, "lr_scheduler": run.hook,
                     "train": {"step": done, "world": layout}}, args.ckpt_dir, done,
                    on_written=faults.during_save(done), lock=lock)
    if dist.get_rank() == 0:
        print(f"saved {path}", flush=True)


def named_lrs(hook: LRSchedulerHook) -> str:
    """``decay=1.000e-03 no_decay=1.000e-03``: the lr each param group holds now (for the next update)."""
    groups = hook.lr_scheduler.optimizer.param_groups
    return " ".join(f"{g.get('name') or i}={lr:.6e}" for i, (g, lr) in enumerate(zip(groups, hook.lr_scheduler.get_last_lr())))


def lm_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))


def report(n: int, loss: torch.Tensor | None, lrs: list[float], mesh, args: argparse.Namespace) -> None:
    """Rank 0 prints step, loss and lr; the loss lives on the last pipeline stage, so it is sent over pp."""
    value = loss.detach().reshape(1).float() if loss is not None else torch.zeros(1, device=mesh.device_type)
    if args.pp > 1:
        dist.broadcast(value, group=mesh["pp"].get_group(), group_src=args.pp - 1)
    if dist.get_rank() == 0:
        print(f"step {n + 1:5d}/{args.updates}  loss {value.item():.4f}  lr {lrs[0]:.3e}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
