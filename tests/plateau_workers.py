"""Rank bodies of tests/test_plateau.py: a plateau schedule on real gloo worlds, its metric agreed in the one sync.

One world runs every scenario in turn (each with a fresh hook), so the ranks are started once per world.
"""
import math
import warnings

import torch
import torch.distributed as dist

import colossal_sched as cs
from distributed import mark
from workers import CountingCollectives

BASES = (0.1, 0.2)
UPDATES = 30
EVAL_EVERY = 2  # a metric on every other update, as a validation loss would come
SPREAD = (0.35, -0.2, 0.5, -0.65)  # each dp rank's offset from the curve: local decisions would differ


def curve(n):
    """The data-parallel mean of the validation loss at update ``n``: falls, then stalls (plateaus)."""
    return 2.0 - 0.1 * min(n, 8) + 0.001 * (n % 3)


def local_metric(n, dp_index, dp_size):
    """This dp rank's own loss: the curve plus an offset of its own (offsets sum to 0 only over the whole group)."""
    return curve(n) + SPREAD[dp_index % len(SPREAD)] * ((n // 2 + dp_index) % 3 - 1)


def agreed_metric(n, dp_size):
    """What the sync reduces the dp group's metrics to (mean, in rank order)."""
    return math.fsum(local_metric(n, i, dp_size) for i in range(dp_size)) / dp_size


def optimizer():
    return torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in BASES], lr=0.1)


def schedule(kind="class"):
    if kind == "class":
        return cs.ReduceLROnPlateauLR(optimizer(), 10**6, warmup_steps=4, patience=2, factor=0.5, cooldown=1)
    return cs.ComposedLR(optimizer(), 10**6, [{"type": "warmup"}, {"type": "linear", "end_lr": 0.05},
                                               {"type": "plateau", "mode": "max", "patience": 1, "factor": 0.3,
                                                "min_lr": 0.01}], boundaries=[3, 6])


_mesh = None


def _dp(world, shape):
    """(dp index, dp size, sync group, dp group) of this rank: a (dp, tp) mesh where ``shape`` is given."""
    global _mesh
    if shape is None:
        return dist.get_rank(), world, None, None
    if _mesh is None:
        from torch.distributed.device_mesh import init_device_mesh

        _mesh = init_device_mesh("cpu", tuple(shape), mesh_dim_names=("dp", "tp"))
    return _mesh.get_local_rank("dp"), shape[0], _mesh, None


def hook_for(sched, group, **kw):
    from hooks import LRSchedulerHook

    return LRSchedulerHook(sched, group=group, timeout=30, **kw)


def run_updates(hook, index, size, start, stop, sign=1.0, save_at=None, ckpt_dir=None, every=EVAL_EVERY):
    """Updates ``start..stop-1``: the lrs each ran with, a metric every EVAL_EVERY updates; a DCP save at ``save_at``."""
    seen, path = [], None
    for n in range(start, stop):
        metric = sign * local_metric(n, index, size) if n % every == 0 else None
        hook.step(n, metric=metric)
        hook.lr_scheduler.optimizer.step()  # with overlap, its pre-hook settles the sync: the update sees the decision
        seen.append(hook.lr_scheduler.get_last_lr())
        if save_at is not None and n == save_at:
            from colossal_sched.checkpoint import save_dcp

            path = save_dcp({"lr_scheduler": hook}, ckpt_dir, n)
    return seen, path


def agree(world, shape, kind="class", overlap=False, ckpt_dir=None):
    index, size, group, _ = _dp(world, shape)
    sched = schedule(kind)
    hook = hook_for(sched, group, overlap=overlap, metric_op="mean")
    with CountingCollectives() as calls:
        seen, path = run_updates(hook, index, size, 0, UPDATES, sign=1.0 if kind == "class" else -1.0,
                                 save_at=15 if ckpt_dir else None, ckpt_dir=ckpt_dir)
    hook.settle()
    out = {"seen": seen, "plateau": sched.plateau.state_dict(), "calls": calls.calls, "path": path}
    hook.close()
    return out


def resume(world, shape, path):
    """Continue a run saved (on another world) after update 15, from its DCP checkpoint."""
    from colossal_sched.checkpoint import read_dcp_state, restore

    index, size, group, _ = _dp(world, shape)
    hook = hook_for(schedule(), group)
    restore(hook, read_dcp_state(path))
    seen, _ = run_updates(hook, index, size, 16, UPDATES)
    out = {"seen": seen, "plateau": hook.lr_scheduler.plateau.state_dict()}
    hook.close()
    return out


def refused(name, world, shape, body, **kw):
    """``(error type, message)`` of ``body(hook, index, size)`` on this rank, and whether the plateau state changed."""
    mark(name)
    index, size, group, _ = _dp(world, shape)
    sched = schedule()
    hook = hook_for(sched, group, **kw)
    run_updates(hook, index, size, 0, 6, every=kw.get("sync_every", EVAL_EVERY))  # metrics at synced steps
    before = sched.plateau.state_dict()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            body(hook, index, size)
        out = None, [str(w.message) for w in caught]
    except Exception as e:
        out = type(e).__name__, str(e)
    out = [*out, before == sched.plateau.state_dict(), [sched.last_epoch, hook.global_step]]
    hook.close()
    return out


def hostile(world, shape):
    last = dist.get_rank() == world - 1
    nan = float("nan")
    cases = {
        "one rank without a metric": lambda h, i, s: h.step(6, metric=None if last else 1.0),
        "a NaN metric on one rank": lambda h, i, s: h.step(6, metric=nan if last else 1.0),
        "an inf metric on one rank": lambda h, i, s: h.step(6, metric=math.inf if last else 1.0),
        "a metric that is not a number": lambda h, i, s: h.step(6, metric="low" if last else 1.0),
        "an int past the floats": lambda h, i, s: h.step(6, metric=10**400 if last else 1.0),
        "observed outside the hook": lambda h, i, s: (h.lr_scheduler.observe(9.0) if last else None, h.step(6)),
    }
    out = {name: refused(name, world, shape, body) for name, body in cases.items()}
    out["NaN skipped"] = refused("NaN skipped", world, shape, lambda h, i, s: h.step(6, metric=nan if last else 1.0),
                                 nonfinite_metric="skip")

    def skip_as_error(h, i, s):  # the skip's warning is an error on the last rank: every rank raises at the next sync
        if last:
            warnings.simplefilter("error")
        h.step(6, metric=1.0 if last else nan)
        h.step(7)
    out["the skip's warning as an error"] = refused("the skip's warning as an error", world, shape, skip_as_error,
                                                    nonfinite_metric="skip")
    out["a metric at a step without a sync"] = refused(  # deferred to the next sync (step 8), which every rank refuses
        "a metric at a step without a sync", world, shape, lambda h, i, s: (h.step(6), h.step(7, metric=1.0), h.step(8)),
        sync_every=2)

    def retried(h, i, s):  # a refused metric leaves every rank before the step: the same step again goes through
        try:
            h.step(6, metric=nan if last else 1.0)
        except Exception as e:
            assert type(e).__name__ == "MetricError" and [h.lr_scheduler.last_epoch, h.global_step] == [5, 5], e
        h.step(6, metric=1.0)
        h.step(7)
    out["retried after a refusal"] = refused("retried after a refusal", world, shape, retried)

    def one_in_three(h, i, s):  # sync_every=3: a metric at a step without a sync on one rank; every rank refuses at
        for n in range(6, 12):   # the next sync (step 9) and then goes on in step
            try:
                h.step(n, metric=1.0 if (last and n == 7) else None)
            except Exception as e:
                assert type(e).__name__ == "MetricError" and n == 9, (n, e)
    out["sync_every=3, a metric off the sync on one rank"] = refused(
        "sync_every=3, a metric off the sync on one rank", world, shape, one_in_three, sync_every=3)
    mark("metric_op differs")
    try:
        hook_for(schedule(), _dp(world, shape)[2], metric_op="max" if last else "mean").close()
        out["metric_op differs"] = [None, "", True]
    except Exception as e:
        out["metric_op differs"] = [type(e).__name__, str(e), True]
    mark("a schedule that does not listen")
    from hooks import LRSchedulerHook

    plain = LRSchedulerHook(cs.CosineAnnealingLR(optimizer(), 100), group=_dp(world, shape)[2], timeout=30)
    plain.step(0)
    try:
        plain.step(1, metric=1.0 if last else None)
        out["a schedule that does not listen"] = [None, "", True]
    except Exception as e:
        out["a schedule that does not listen"] = [type(e).__name__, str(e), True]
    plain.close()
    return out


def all_scenarios(rank, world, shape, ckpt_dir):
    mark("agree")
    out = {"agree": agree(world, shape, ckpt_dir=ckpt_dir)}
    mark("agree overlap")
    out["overlap"] = agree(world, shape, overlap=True)
    mark("composed")
    out["composed"] = agree(world, shape, kind="composed")
    out["hostile"] = hostile(world, shape)
    return out


def resume_on(rank, world, shape, path):
    mark("resume")
    return resume(world, shape, path)
