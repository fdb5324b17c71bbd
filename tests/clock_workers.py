"""Rank bodies of tests/test_clock.py: the clock (samples, tokens, skipped updates) on real gloo worlds.

One world runs every scenario in turn (each with a fresh hook), so the ranks are started once per world.
"""
import torch
import torch.distributed as dist

import colossal_sched as cs
from colossal_sched.clock import Clock
from colossal_sched.ramp import BatchRamp
from distributed import mark
from workers import CountingCollectives

GBS = 32
RAMP = BatchRamp(GBS // 4, GBS // 4, 6 * GBS, GBS)


def linear_warmup_oracle(t, total, warmup, base):
    """LinearWarmupLR's formula, written out: (t+1)/(W+1) base in the warmup, then linear to 0 at T."""
    if t < warmup:
        return (t + 1) / (warmup + 1) * base
    return (total - min(t, total)) / (total - warmup) * base


def consumed_before(n, ramp=RAMP):
    """Samples consumed before update ``n``: each update takes the ramp's batch at what was consumed before it."""
    c = 0
    for _ in range(n):
        c += ramp.batch_size(c)
    return c


def _optimizer(lrs=(0.1, 0.2)):
    return torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs], lr=0.1)


_mesh = None


def _dp(world, shape):
    """(dp index, dp size, sync group) of this rank: a (dp, tp) mesh where ``shape`` is given, else all dp."""
    global _mesh
    if shape is None:
        return dist.get_rank(), world, None
    if _mesh is None:
        from torch.distributed.device_mesh import init_device_mesh

        _mesh = init_device_mesh("cpu", tuple(shape), mesh_dim_names=("dp", "tp"))
    return _mesh.get_local_rank("dp"), shape[0], _mesh


def share(total, index, size):
    """This dp rank's share of ``total`` samples (the first ``total % size`` ranks take one more)."""
    return total // size + (index < total % size)


def _hook(sched, group, **kw):
    from hooks import LRSchedulerHook

    return LRSchedulerHook(sched, group=group, timeout=30, **kw)


def samples_under_ramp(world, shape, updates=24, start=0, state=None, overlap=False):
    """A LinearWarmupLR counting samples under RAMP; each dp rank reports its share. The lrs each update ran with."""
    index, size, group = _dp(world, shape)
    sched = cs.LinearWarmupLR(_optimizer(), total_steps=30 * GBS, warmup_steps=4 * GBS).counting("samples")
    hook = _hook(sched, group, overlap=overlap)
    if state is not None:
        hook.load_state_dict(state)
    seen, saved = [], None
    with CountingCollectives() as calls:
        hook.step(start)
        for n in range(start, updates):
            batch = RAMP.batch_size(hook.clock.samples)  # reading the clock finishes a sync in flight (overlap)
            seen.append(sched.get_last_lr())
            hook.step(n + 1, samples=share(batch, index, size), tokens=16 * share(batch, index, size))
            if n + 1 == 10:
                saved = hook.state_dict()
    clock = hook.clock.state_dict()  # before close(), which drops a verdict in flight
    hook.close()
    return {"seen": seen, "calls": calls.calls, "saved": saved, "clock": clock}


def skip_at(world, k, unit, accumulate=1, updates=12):
    """Every rank skips update ``k`` (told with the next step); with ``accumulate`` micro-batches per update, the
    hook is called per micro-batch (repeats) as ColossalAI's trainer does. The lrs each update ran with."""
    sched = cs.CosineAnnealingWarmupLR(_optimizer(), total_steps=20 * (GBS if unit == "samples" else 1),
                                       warmup_steps=3 * (GBS if unit == "samples" else 1)).counting(unit)
    hook = _hook(sched, None)
    seen = []
    for micro in range(updates * accumulate):
        n = micro // accumulate
        new = micro % accumulate == 0
        report = dict(samples=share(GBS, dist.get_rank(), world), skipped=n - 1 == k) if new and n else {}
        hook.step(n, **report)
        if new:
            seen.append(sched.get_last_lr())
    hook.close()
    return seen


def refused(name, world, shape, body):
    """Run ``body(hook, dp index, dp size)`` on a fresh hook; the error it raises on this rank (type, message)."""
    mark(name)
    index, size, group = _dp(world, shape)
    sched = cs.CosineAnnealingLR(_optimizer(), total_steps=10 * GBS).counting("samples")
    hook = _hook(sched, group)
    hook.step(0)
    try:
        body(hook, index, size)
    except Exception as e:
        return [type(e).__name__, str(e)]
    finally:
        hook.close()
    return None


def hostile(world, shape):
    """Each scenario refused on every rank in the same sync: the error each rank raised."""
    rank, last = dist.get_rank(), world - 1
    out = {
        "skipped alone": refused("skipped alone", world, shape, lambda h, i, s: h.step(1, samples=4, skipped=rank == last)),
        "totals differ": refused("totals differ", world, shape, lambda h, i, s: (
            setattr(h, "clock", Clock(samples=7)) if rank == last else None, h.step(1, samples=4))),
        "negative share": refused("negative share", world, shape, lambda h, i, s: h.step(1, samples=-1 if rank == last else 4)),
        "repeat with samples": refused("repeat with samples", world, shape, lambda h, i, s: (
            h.step(1, samples=4), h.step(1, samples=4 if rank == last else 0), h.step(2, samples=4))),
        "int64 overflow": refused("int64 overflow", world, shape, lambda h, i, s: h.step(1, tokens=2**62)),
    }
    if shape is not None:  # a tp peer reports another share than its dp peers: the dp groups' sums differ
        out["dp sums differ"] = refused("dp sums differ", world, shape, lambda h, i, s: h.step(1, samples=4 + (rank == last)))
    return out


def all_scenarios(rank, world, shape):
    mark("samples under ramp")
    out = {"ramp": samples_under_ramp(world, shape), "ramp overlap": samples_under_ramp(world, shape, overlap=True)}
    for unit in ("updates", "samples"):
        mark(f"skip {unit}")
        out[f"skip {unit}"] = skip_at(world, 5, unit)
        out[f"skip {unit} accumulate"] = skip_at(world, 5, unit, accumulate=3)
    out["hostile"] = hostile(world, shape)
    return out


def ramp_only(rank, world, shape):
    return {"ramp": samples_under_ramp(world, shape)}


def resume_ramp(rank, world, shape, state):
    """Continue RAMP's run from a hook state saved after update 10 (on another world)."""
    return samples_under_ramp(world, shape, start=10, state=state)


def grad_scaler_ddp(rank, world, k, updates=8):
    """DDP + torch.amp.GradScaler on CPU: rank 0's batch holds an inf at update ``k``; DDP's all-reduce gives every
    rank inf gradients, GradScaler skips the step everywhere, SkippedUpdates tells the hook. The lrs and skips seen."""
    from hooks import SkippedUpdates

    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = cs.CosineAnnealingWarmupLR(opt, total_steps=10, warmup_steps=2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    detector = SkippedUpdates(opt, scaler)
    hook = _hook(sched, None)
    hook.step(0)
    seen, skips = [], []
    for n in range(updates):
        seen.append(sched.get_last_lr())
        x = torch.ones(2, 4)
        if n == k and rank == 0:
            x[0, 0] = float("inf")
        scaler.scale(model(x).sum()).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        skips.append(detector())
        hook.step(n + 1, samples=2, skipped=skips[-1])
    hook.close()
    return {"seen": seen, "skips": skips, "clock": hook.clock.state_dict()}


def hyperparams_agree(rank, world):
    """lr, weight decay and Adam's beta1 driven by one hook: equal on every rank; a rank whose weight-decay schedule
    differs is refused on every rank when the sync connects."""
    from colossal_sched.errors import ScheduleMismatchError

    def build(end_wd):
        opt = torch.optim.AdamW([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr, "weight_decay": wd}
                                 for lr, wd in ((0.1, 0.1), (0.2, 0.05))])
        lr = cs.CosineAnnealingWarmupLR(opt, 20, 2)
        return lr.add_schedules(cs.CosineAnnealingLR.for_key("weight_decay", opt, 20, eta_min=end_wd),
                                cs.ComposedLR.for_key("beta1", opt, 20, [{"type": "linear", "end_lr": 0.95}]))

    sched = build(0.01)
    hook = _hook(sched, None)
    seen = []
    for n in range(8):
        hook.step(n)
        seen.append([(g["lr"], g["weight_decay"], g["betas"][0]) for g in sched.optimizer.param_groups])
    hook.close()
    mark("another weight-decay schedule")
    try:
        _hook(build(0.02 if rank == world - 1 else 0.01), None)
        refusal = None
    except ScheduleMismatchError as e:
        refusal = str(e)
    return {"seen": seen, "refusal": refusal}


def resume_choice_and_tensors(rank, world, state):
    """Part 6 on every rank: each restores ``state`` (a 1000-step cosine at step 500) into a 2000-step one, keeping
    the checkpoint's step and taking the new length (a re-plan); the last rank then chooses a swap instead, which
    the sync inside ``restore`` refuses on every rank. Part 5: tensor lr and weight decay written in place."""
    from colossal_sched.checkpoint import restore
    from colossal_sched.resume_choice import ResumeChoice

    def hook_for(total):
        return _hook(cs.CosineAnnealingWarmupLR(_optimizer(), total, 100), None)

    out = {}
    hook = hook_for(2000)
    restore(hook, state, ResumeChoice(checkpoint=["step"], current=["total_steps"]), logger=lambda _: None)
    out["resumed"] = [hook.step(n) for n in range(500, 505)]
    hook.close()
    mark("another choice on one rank")
    other = hook_for(2000)
    choice = ResumeChoice(checkpoint=["step"], current=["total_steps"], replan=rank != world - 1)
    try:
        restore(other, state, choice, logger=lambda _: None)
        out["refused"] = None
    except Exception as e:
        out["refused"] = [type(e).__name__, str(e)]
    other.close()
    mark("a restore refused on one rank")
    third = hook_for(1000)
    mine = state if rank != world - 1 else {**state, "colossal_sched": state["colossal_sched"].replace(
        '"class": "CosineAnnealingWarmupLR"', '"class": "CosineAnnealingLR"')}  # another class: refused before the sync
    try:
        restore(third, mine, "raise", logger=lambda _: None)
        out["one refused"] = None
    except Exception as e:
        out["one refused"] = [type(e).__name__, str(e)]
    third.close()
    mark("tensor lr and weight decay")
    opt = torch.optim.AdamW([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": torch.tensor(lr),
                              "weight_decay": torch.tensor(0.1)} for lr in (0.1, 0.2)])
    held = [(g["lr"], g["weight_decay"]) for g in opt.param_groups]
    sched = cs.CosineAnnealingWarmupLR(opt, 20, 2).add_schedules(cs.CosineAnnealingLR.for_key("weight_decay", opt, 20, eta_min=0.01))
    hook = _hook(sched, None)
    values = []
    for n in range(6):
        hook.step(n)
        assert all(g["lr"] is a and g["weight_decay"] is b for g, (a, b) in zip(opt.param_groups, held)), "a tensor was replaced"
        values.append([[float(g["lr"]), float(g["weight_decay"])] for g in opt.param_groups])
    hook.close()
    out["tensors"] = values
    return out
