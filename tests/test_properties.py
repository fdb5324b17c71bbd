"""Issue #2: random configurations are finite, within bounds, and resume exactly at any step."""
import json
import math

from conftest import make_optimizer
from hypothesis import event, given, settings
from hypothesis import strategies as st

import colossal_sched as cs


@st.composite
def configs(draw):
    name = draw(st.sampled_from(sorted(cs.COLOSSALAI_SCHEDULERS)))  # the new ones: tests/test_new_schedules.py
    total = draw(st.integers(1, 300))
    kw = {}
    warm = draw(st.integers(0, total - 1))
    floor = draw(st.floats(0, 0.05))
    if name in ("CosineAnnealingWarmupLR", "FlatAnnealingWarmupLR", "PolynomialWarmupLR", "LinearWarmupLR"):
        kw["warmup_steps"] = warm
    if name in ("CosineAnnealingLR", "CosineAnnealingWarmupLR", "FlatAnnealingLR", "FlatAnnealingWarmupLR"):
        kw["eta_min"] = floor
    if name in ("FlatAnnealingLR", "FlatAnnealingWarmupLR", "OneCycleLR"):
        kw["pct_start"] = draw(st.floats(0, 1))
    if name in ("PolynomialLR", "PolynomialWarmupLR"):
        kw.update(end_lr=floor, power=draw(st.floats(0.1, 4)))
    if name in ("MultiStepLR", "MultiStepWarmupLR"):
        if name == "MultiStepWarmupLR":
            kw["warmup_steps"] = draw(st.integers(0, total))
        low = kw.get("warmup_steps", 0)
        kw["milestones"] = sorted(draw(st.sets(st.integers(low, total + 5), min_size=1, max_size=5)))
        kw["gamma"] = draw(st.floats(0.05, 1))
    if name in ("StepLR", "ExponentialLR"):
        kw["gamma"] = draw(st.floats(0.5, 1))
    if name == "StepLR":
        kw["step_size"] = draw(st.integers(1, 50))
    if name == "OneCycleLR":
        kw.update(anneal_strategy=draw(st.sampled_from(["cos", "linear"])), three_phase=draw(st.booleans()),
                  div_factor=draw(st.floats(1, 100)), final_div_factor=draw(st.floats(1, 1e4)))
        if kw["three_phase"]:
            kw["pct_start"] = min(kw["pct_start"], 0.5)
    if name in ("LambdaLR", "MultiplicativeLR"):
        rate = draw(st.floats(0.9, 1.0))
        kw["lr_lambda"] = (lambda t: rate**t) if name == "LambdaLR" else (lambda t: rate)
    return name, total, kw


@settings(max_examples=150, deadline=None, derandomize=True)  # the same examples every run
@given(configs(), st.lists(st.floats(1e-5, 1.0), min_size=1, max_size=3), st.data())
def test_random_configs_are_finite_bounded_and_resume_exactly(config, lrs, data):
    name, total, kw = config
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # milestones past total_steps warn
        opt = make_optimizer(len(lrs), lrs=tuple(lrs))
        sched = cs.SCHEDULERS[name](opt, total, **kw)
    steps = total + 10
    table = sched.lr_table(range(steps))
    assert all(math.isfinite(v) for v in table.ravel())
    for g, base in enumerate(lrs):
        ceiling = base * (1 + 1e-12) + kw.get("eta_min", 0) + kw.get("end_lr", 0)
        assert (table[:, g] >= 0).all() and (table[:, g] <= ceiling).all()
    k = data.draw(st.integers(0, steps - 1))
    uninterrupted = []
    for t in range(steps):
        if t == k:
            state = json.loads(json.dumps(sched.state_dict()))
        uninterrupted.append(sched.get_last_lr())
        sched.step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed = cs.SCHEDULERS[name](make_optimizer(len(lrs), lrs=tuple(lrs)), total, **kw)
    resumed.load_state_dict(state)
    for t in range(k, steps):
        assert resumed.get_last_lr() == uninterrupted[t]
        resumed.step()


# ---------------------------------------------------------------- issue #10


@st.composite
def legal_configs(draw):
    """Random legal configurations of ColossalAI's 14 schedulers, extreme ones included (gamma > 1 while
    the lr stays finite, tiny/huge base lrs, lambdas near the edge)."""
    from colossal_sched.builder import COLOSSALAI_SCHEDULERS

    name = draw(st.sampled_from(sorted(COLOSSALAI_SCHEDULERS)))
    total = draw(st.integers(1, 200))
    kw = {}
    if name in ("CosineAnnealingWarmupLR", "FlatAnnealingWarmupLR", "PolynomialWarmupLR", "LinearWarmupLR"):
        kw["warmup_steps"] = draw(st.integers(0, total - 1))
    if name in ("CosineAnnealingLR", "CosineAnnealingWarmupLR", "FlatAnnealingLR", "FlatAnnealingWarmupLR"):
        kw["eta_min"] = draw(st.floats(0, 10))  # may lie above the base lr
    if name in ("FlatAnnealingLR", "FlatAnnealingWarmupLR", "OneCycleLR"):
        kw["pct_start"] = draw(st.floats(0, 1))
    if name in ("PolynomialLR", "PolynomialWarmupLR"):
        kw.update(end_lr=draw(st.floats(0, 10)), power=draw(st.floats(0.01, 10)))
    if name in ("MultiStepLR", "MultiStepWarmupLR"):
        if name == "MultiStepWarmupLR":
            kw["warmup_steps"] = draw(st.integers(0, total))
        low = kw.get("warmup_steps", 0)
        kw["milestones"] = sorted(draw(st.sets(st.integers(low, total + 5), min_size=1, max_size=6)))
    if name in ("MultiStepLR", "MultiStepWarmupLR", "StepLR", "ExponentialLR"):
        kw["gamma"] = draw(st.one_of(st.floats(1e-3, 1.0), st.floats(1.0, 2.0), st.floats(2.0, 1e10)))
    if name == "StepLR":
        kw["step_size"] = draw(st.integers(1, 30))
    if name == "OneCycleLR":
        lo = draw(st.floats(0, 0.99))
        kw.update(anneal_strategy=draw(st.sampled_from(["cos", "linear"])), three_phase=draw(st.booleans()),
                  div_factor=draw(st.floats(1e-3, 1e4)), final_div_factor=draw(st.floats(1e-3, 1e6)),
                  base_momentum=lo, max_momentum=draw(st.floats(lo, 0.99)))
    if name == "LambdaLR":
        rate = draw(st.floats(0.5, 1.5))
        kw["lr_lambda"] = lambda t: rate**t
    if name == "MultiplicativeLR":
        rate = draw(st.one_of(st.floats(0.0, 2.0), st.floats(2.0, 1e3)))
        kw["lr_lambda"] = lambda t: rate
    return name, total, kw


def _overflows(gamma, base, kmax):
    import math

    try:
        return not math.isfinite(base * math.pow(gamma, kmax))
    except OverflowError:
        return True


@settings(max_examples=120, deadline=None, derandomize=True)  # the same examples every run
@given(legal_configs(), st.lists(st.floats(1e-8, 1e3), min_size=1, max_size=3), st.randoms(use_true_random=False))
def test_every_path_gives_the_same_finite_non_negative_lr(config, base_lrs, rnd):
    """Issue #10: every lr in [0, T+10] from step, step_to, lr_at and lr_table is finite, >= 0 and the same."""
    import warnings

    import numpy as np

    from colossal_sched.errors import InvalidLRError

    name, total, kw = config
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # milestones past total_steps; OneCycle on momentum 0
        try:
            sched = cs.SCHEDULERS[name](make_optimizer(len(base_lrs), lrs=tuple(base_lrs)), total, **kw)
        except InvalidLRError as e:  # only an lr that really overflows within [0, T] is refused
            assert name in ("ExponentialLR", "StepLR", "MultiStepLR", "MultiStepWarmupLR", "MultiplicativeLR")
            assert kw["gamma"] > 1.0 and "gamma" in str(e) and f"total_steps={total}" in str(e)
            reached = {"ExponentialLR": total, "StepLR": total // kw.get("step_size", 1)}.get(
                name, sum(m <= total for m in kw.get("milestones", [])))
            assert _overflows(kw["gamma"], max(base_lrs), reached)  # independently: it really does
            event("refused at construction")
            return
    steps = list(range(total + 11))
    try:
        stepped = []
        for _ in steps:
            stepped.append(list(sched.get_last_lr()))
            sched.step()
    except InvalidLRError as e:  # a user function (MultiplicativeLR's product) overflowed: refused at that step
        assert name == "MultiplicativeLR" and f"step {len(stepped)}" in str(e)
        event("refused at the overflow step")
        return
    stepped = np.array(stepped)
    assert np.isfinite(stepped).all() and (stepped >= 0).all()
    at = np.array([sched.lr_at(t) for t in steps])
    order = steps[:]
    rnd.shuffle(order)
    jumped = np.empty_like(at)
    for t in order:
        sched.step_to(t)
        jumped[t] = [g["lr"] for g in sched.optimizer.param_groups]
    table = sched.lr_table(steps)
    assert (at == stepped).all() and (jumped == stepped).all()
    assert (table == stepped).all()  # bit for bit, pow included
