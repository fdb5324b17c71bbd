"""A compiled ``opt.step`` is not recompiled when our scheduler changes a tensor lr (it writes it in place).

The timings and the inductor backend are in ``bench/bench_compile.py``; this guards the property with dynamo's
counters, on the ``eager`` backend, over a few updates.
"""
import pytest
import torch

import colossal_sched as cs

dynamo = pytest.importorskip("torch._dynamo")


def compiled_run(lr, updates=5):
    """(new graphs, frames compiled) after the first compiled step, over ``updates`` steps with a changing lr."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = torch.nn.Linear(4, 4)
    wd = torch.tensor(0.1) if isinstance(lr, torch.Tensor) else 0.1  # a scheduled weight decay follows the same rule
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    sched = cs.CosineAnnealingWarmupLR(opt, total_steps=updates + 2, warmup_steps=2).add_schedules(
        cs.CosineAnnealingLR.for_key("weight_decay", opt, updates + 2, eta_min=0.01))
    held, held_wd = opt.param_groups[0]["lr"], opt.param_groups[0]["weight_decay"]

    @torch.compile(backend="eager")
    def step():
        opt.step()

    first, seen = None, set()
    for _ in range(updates):
        model(torch.ones(4)).sum().backward()
        step()
        if first is None:
            first = (counters["stats"]["unique_graphs"], counters["frames"]["total"])
        sched.step()
        seen.add(float(opt.param_groups[0]["lr"]))
        if isinstance(lr, torch.Tensor):
            assert opt.param_groups[0]["lr"] is held and opt.param_groups[0]["weight_decay"] is held_wd
            assert float(held_wd) == pytest.approx(sched._companions[0].get_last_lr()[0], rel=1e-6)
    assert len(seen) >= updates - 1  # the lr changes (the warmup's end and the decay's start share the peak)
    result = (counters["stats"]["unique_graphs"] - first[0], counters["frames"]["total"] - first[1])
    torch._dynamo.reset()
    return result


def test_tensor_lr_and_weight_decay_are_not_recompiled():
    assert compiled_run(torch.tensor(0.01)) == (0, 0)


def test_float_lr_is_recompiled_the_counters_see_it():
    graphs, frames = compiled_run(0.01)
    assert graphs >= 1 and frames >= 1
