"""Rank bodies of tests/test_range_test.py: the lr range test on real gloo worlds.

One world runs every scenario in turn, so the ranks are started once per world size.
"""
import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from colossal_sched import lr_range_test  # noqa: E402
from distributed import mark  # noqa: E402


def _local(t):
    """A DTensor's (FSDP2, tensor parallel) local shard, else the tensor."""
    return t.to_local() if hasattr(t, "to_local") else t


def snapshot(model, optimizer):
    """Copies of what the range test must leave as it was: parameters, buffers, optimizer state and groups."""
    tensors = [_local(t).detach().clone() for t in [*model.parameters(), *model.buffers()]]
    state = [{k: _local(v).clone() if torch.is_tensor(v) else v for k, v in s.items()} for s in optimizer.state.values()]
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    return tensors, state, groups, [m.training for m in model.modules()]


def unchanged(before, model, optimizer):
    """``before`` equals the model and optimizer now, bit for bit (NaN in the same places counts as equal)."""
    tensors, state, groups, modes = snapshot(model, optimizer)
    same = lambda a, b: torch.equal(a, b) if torch.is_tensor(a) else a == b  # noqa: E731
    return (len(tensors) == len(before[0]) and all(same(a, b) for a, b in zip(before[0], tensors))
            and len(state) == len(before[1]) and all(a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
                                                     for a, b in zip(before[1], state))
            and groups == before[2] and modes == before[3])


def curve(result):
    return {"lrs": list(result.lrs), "losses": list(result.losses), "smoothed": list(result.smoothed),
            "suggestion": result.suggestion, "stopped_early": result.stopped_early, "reason": result.reason,
            "note": result.note}


def tiny_lm(world, tp, updates=20):
    """train.py's tiny LM (FSDP2 over dp, tensor parallel over tp) after one AdamW update, then the range test
    (its loss averaged over every rank); ``identical``: model and optimizer bit-identical afterwards."""
    mark("tiny_lm")
    from launch_scripts import find_lr, train
    from launch_scripts.tiny_lm import batch

    args = find_lr.parse_args(["--tp", str(tp), "--layers", "2", "--num-updates", str(updates)])
    run = train.build(args)
    train.update(args, run, 0, args.batch)  # AdamW moments and step counts to restore
    before = snapshot(run.model, run.optimizer)
    data = (batch(n, run.dp_rank, args.batch, args.seq, args.vocab) for n in range(1, updates + 1))
    result = lr_range_test(run.model, run.optimizer, data, lambda m, xy: train.lm_loss(m(xy[0]), xy[1]),
                           start_lr=1e-4, end_lr=1.0, num_updates=updates)
    return {**curve(result), "identical": unchanged(before, run.model, run.optimizer)}


def _ddp_linear():
    """A DDP-wrapped linear model (its backward all-reduces) and SGD with momentum, after one update."""
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    _square(model, _batch(0)).backward()
    opt.step()
    return model, opt


def _batch(n):
    g = torch.Generator().manual_seed(100 * n + dist.get_rank())
    return torch.randn(8, 4, generator=g)


def _square(model, x):
    return model(x).pow(2).mean()


def exhausted(world, batches_on_last):
    """The last rank's data runs out after ``batches_on_last`` batches, the others' never: every rank stops there."""
    mark(f"exhausted({batches_on_last})")
    model, opt = _ddp_linear()
    before = snapshot(model, opt)
    n = batches_on_last if dist.get_rank() == world - 1 else 20
    result = lr_range_test(model, opt, map(_batch, range(n)), _square, start_lr=1e-4, end_lr=1.0, num_updates=20)
    return {**curve(result), "identical": unchanged(before, model, opt)}


def nan_on_rank0():
    """Rank 0's loss is NaN from the first update (the others' finite): every rank stops after it."""
    mark("nan_on_rank0")
    model, opt = _ddp_linear()
    before = snapshot(model, opt)
    nan = dist.get_rank() == 0
    result = lr_range_test(model, opt, map(_batch, range(20)), lambda m, x: _square(m, x) * (float("nan") if nan else 1),
                           start_lr=1e-4, end_lr=1.0, num_updates=20)
    return {**curve(result), "identical": unchanged(before, model, opt)}


def refused():
    """start_lr >= end_lr: a ValueError on every rank before any collective; nothing changed."""
    mark("refused")
    model, opt = _ddp_linear()
    before = snapshot(model, opt)
    try:
        lr_range_test(model, opt, map(_batch, range(20)), _square, start_lr=1.0, end_lr=1.0)
    except ValueError as e:
        return {"error": str(e), "identical": unchanged(before, model, opt)}
    return {"error": None}


def all_scenarios(rank, world, tp):
    """Every scenario in turn on this world; the next one runs only if no rank hung in the one before."""
    out = {"refused": refused(), "exhausted": exhausted(world, 7), "empty": exhausted(world, 0), "nan": nan_on_rank0()}
    out["tiny_lm"] = tiny_lm(world, tp)
    dist.barrier()
    return out
