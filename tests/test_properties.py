"""Issue #2: random configurations are finite, within bounds, and resume exactly at any step."""
import json
import math

from conftest import make_optimizer
from hypothesis import given, settings
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


@settings(max_examples=150, deadline=None)
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
