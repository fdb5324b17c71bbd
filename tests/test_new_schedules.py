"""Issue #12: WarmupStableDecayLR, InverseSqrtLR, CosineAnnealingWarmRestartsLR, ConstantWarmupLR against
the issue's formulas, by every access path, with the bad-input rules of the existing classes."""
import inspect
import json
import math
import warnings

import numpy as np
import pytest
import torch
from conftest import BASE_LRS, make_optimizer
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import NEW_CASES, new_lr

import colossal_sched as cs

T = 20
STEPS = range(T + 16)
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(NEW_CASES)]


def build(name, kw, optimizer=None, total=T):
    return cs.SCHEDULERS[name](optimizer or make_optimizer(), total, **kw)


def group_lrs(opt):
    return [g["lr"] for g in opt.param_groups]


@pytest.mark.parametrize("name,kw", NEW_CASES, ids=IDS)
def test_stepping_lr_at_table_step_to_and_json_resume_follow_the_formula(name, kw):
    opt = make_optimizer()
    sched = build(name, kw, opt)
    stepped, states = [], []
    for t in STEPS:
        expected = [new_lr(name, kw, b, t, T) for b in BASE_LRS]
        assert group_lrs(opt) == pytest.approx(expected, rel=1e-12, abs=1e-15), f"step {t}"
        assert sched.last_epoch == t and sched.get_last_lr() == group_lrs(opt)
        stepped.append(group_lrs(opt))
        states.append(json.loads(json.dumps(sched.state_dict())))
        sched.step()
    assert [sched.lr_at(t) for t in STEPS] == stepped  # pure, bit-identical to stepping
    assert (sched.lr_table(list(STEPS)) == np.array(stepped)).all()  # one definition: the table agrees bit for bit
    jumper = build(name, kw)
    for t in [7, 3, T + 9, 0, T, 11]:
        jumper.step_to(t)
        assert group_lrs(jumper.optimizer) == stepped[t] and jumper.last_epoch == t
    for k in [0, 1, 4, 9, T - 1, T, T + 3]:
        opt2 = make_optimizer()
        resumed = build(name, kw, opt2)
        for g in opt2.param_groups:
            g["lr"] = 123.0
        resumed.load_state_dict(states[k])
        for t in range(k, len(STEPS)):
            assert group_lrs(opt2) == stepped[t], f"resumed at {k}, step {t}"
            resumed.step()


@pytest.mark.parametrize("name,kw", NEW_CASES, ids=IDS)
def test_state_is_plain_json_with_every_hyperparameter_and_a_fingerprint(name, kw):
    sched = build(name, kw)
    sched.step()
    state = sched.state_dict()
    assert json.loads(json.dumps(state)) == state
    assert state["class"] == name and state["last_epoch"] == 1 and state["replans"] == []
    assert set(state["hyperparams"]) == set(inspect.signature(type(sched).__init__).parameters) - {"self", "optimizer", "last_epoch"}
    for key, value in kw.items():
        assert state["hyperparams"][key] == value
    assert sched.fingerprint() == build(name, kw).fingerprint()
    other = build(name, kw, total=T + 1)
    assert other.fingerprint() != sched.fingerprint()
    with pytest.raises(cs.ScheduleMismatchError, match="total_steps"):
        other.load_state_dict(state)


def test_registered_exported_and_built_from_a_config():
    for name in ("WarmupStableDecayLR", "InverseSqrtLR", "CosineAnnealingWarmRestartsLR", "ConstantWarmupLR", "ComposedLR"):
        assert cs.SCHEDULERS[name] is getattr(cs, name) and name not in cs.COLOSSALAI_SCHEDULERS
    config = {"type": "WarmupStableDecayLR", "total_steps": 100, "warmup_steps": 10, "decay_ratio": 0.2, "decay_style": "cosine"}
    s = cs.build_lr_scheduler(config, make_optimizer())
    assert isinstance(s, cs.WarmupStableDecayLR) and s.lr_at(79) == list(BASE_LRS) and s.lr_at(100) == [0.0] * 4
    assert len(cs.COLOSSALAI_SCHEDULERS) == 14


def test_exact_signatures():
    sig = lambda cls: str(inspect.signature(cls.__init__))  # noqa: E731
    assert sig(cs.WarmupStableDecayLR) == ("(self, optimizer: 'Optimizer', total_steps: 'int', warmup_steps: 'int' = 0, "
                                           "decay_steps: 'Optional[int]' = None, decay_ratio: 'Optional[float]' = None, "
                                           "decay_style: 'str' = 'linear', min_lr: 'float' = 0.0, last_epoch: 'int' = -1) -> 'None'")
    names = lambda cls: [(p.name, p.default) for p in inspect.signature(cls.__init__).parameters.values()][2:]  # noqa: E731
    assert names(cs.InverseSqrtLR) == [("total_steps", inspect.Parameter.empty), ("warmup_steps", 0), ("timescale", None),
                                       ("min_lr", 0.0), ("last_epoch", -1)]
    assert names(cs.CosineAnnealingWarmRestartsLR) == [
        ("total_steps", inspect.Parameter.empty), ("first_cycle_steps", inspect.Parameter.empty), ("cycle_mult", 1.0),
        ("cycle_decay", 1.0), ("warmup_steps", 0), ("eta_min", 0.0), ("last_epoch", -1)]
    assert names(cs.ConstantWarmupLR) == [("total_steps", inspect.Parameter.empty), ("warmup_steps", 0), ("last_epoch", -1)]


def test_wsd_decay_styles_and_lengths():
    s = cs.WarmupStableDecayLR(make_optimizer(1, lrs=(1.0,)), 100, warmup_steps=10, decay_steps=20, decay_style="1-sqrt", min_lr=0.1)
    assert s.lr_at(9) == [1.0] and s.lr_at(79) == [1.0] and s.lr_at(100) == [pytest.approx(0.1)]
    assert s.lr_at(85)[0] == pytest.approx(0.1 + 0.9 * (1 - math.sqrt(5 / 20)), rel=1e-14)
    r = cs.WarmupStableDecayLR(make_optimizer(1, lrs=(1.0,)), 110, warmup_steps=10, decay_ratio=0.25)
    assert r.lr_at(84) == [1.0] and r.lr_at(85) == [1.0] and r.lr_at(86)[0] < 1.0  # D = int(0.25 * 100) = 25
    assert [label for label, _ in r.phase_boundaries()] == ["warmup end", "decay start", "end"]


def test_restarts_cycles_grow_and_decay_and_jump_in_closed_form():
    s = cs.CosineAnnealingWarmRestartsLR(make_optimizer(1, lrs=(1.0,)), 10**15, first_cycle_steps=10, cycle_mult=2.0,
                                         cycle_decay=0.5, eta_min=0.0)
    starts = [0, 10, 30, 70, 150]
    for i, start in enumerate(starts):
        assert s.lr_at(start) == [0.5**i]  # every cycle restarts at its peak
    assert [m for label, m in s.phase_boundaries()[:4]] == starts[1:5]
    s.step_to(10**14)  # ~43 cycles: found by bisection in the cycle starts, not by walking steps
    i = int(math.log2(10**14 / 10 + 1))
    assert s.get_last_lr()[0] <= 0.5**i + 1e-300
    flat = cs.CosineAnnealingWarmRestartsLR(make_optimizer(1, lrs=(1.0,)), 2**62, first_cycle_steps=7)
    flat.step_to(2**61)  # cycle_mult = 1: integer division
    u = 2**61 % 7
    assert flat.get_last_lr()[0] == pytest.approx((1 + math.cos(math.pi * u / 7)) / 2, rel=1e-12)


@pytest.mark.parametrize("mult", [1.0, 1.5])
def test_restarts_step_reuses_the_last_cycle_and_agrees_with_the_table_bit_for_bit(mult):
    """step() keeps the last step's cycle (no division, bisection or pow inside it): stepping, and jumps back and
    forth across cycles, give lr_table's bits."""
    kw = dict(first_cycle_steps=7, cycle_mult=mult, cycle_decay=0.9, warmup_steps=2, eta_min=1e-3)
    s = cs.CosineAnnealingWarmRestartsLR(make_optimizer(), 200, **kw)
    table = s.lr_table(range(201))
    stepped = [group_lrs(s.optimizer)]
    for _ in range(205):
        s.step()
        stepped.append(group_lrs(s.optimizer))
    assert (np.array(stepped[:201]) == table).all() and stepped[201:] == [stepped[200]] * 5
    for t in [150, 3, 200, 6, 7, 0, 199, 8, 9]:
        s.step_to(t)
        assert group_lrs(s.optimizer) == table[t].tolist() == s.lr_at(t)


def test_restarts_peaks_are_per_group():
    s = cs.CosineAnnealingWarmRestartsLR(make_optimizer(), 40, first_cycle_steps=5, cycle_decay=0.5, warmup_steps=2)
    assert s.lr_at(5) == [b * 0.5 / 2 for b in BASE_LRS] and s.lr_at(6) == [b * 0.5 for b in BASE_LRS]


BAD = [
    ("WarmupStableDecayLR", dict(total_steps=10), "exactly one of decay_steps"),
    ("WarmupStableDecayLR", dict(total_steps=10, decay_steps=3, decay_ratio=0.3), "exactly one of decay_steps"),
    ("WarmupStableDecayLR", dict(total_steps=10, warmup_steps=4, decay_steps=7), r"decay_steps must be an int in \[0, 6\]"),
    ("WarmupStableDecayLR", dict(total_steps=10, decay_ratio=1.5), r"decay_ratio must be a finite float in \[0.0, 1.0\]"),
    ("WarmupStableDecayLR", dict(total_steps=10, decay_steps=2, decay_style="exp"), "decay_style must be one of"),
    ("WarmupStableDecayLR", dict(total_steps=10, decay_steps=2, min_lr=-1.0), "min_lr"),
    ("WarmupStableDecayLR", dict(total_steps=10, warmup_steps=11, decay_steps=0), "warmup_steps"),
    ("WarmupStableDecayLR", dict(total_steps=10, decay_steps=2.5), "decay_steps"),
    ("InverseSqrtLR", dict(total_steps=10, timescale=0.0), "timescale"),
    ("InverseSqrtLR", dict(total_steps=10, timescale=float("nan")), "timescale"),
    ("InverseSqrtLR", dict(total_steps=10, warmup_steps=10), "warmup_steps"),
    ("InverseSqrtLR", dict(total_steps=10, min_lr=float("inf")), "min_lr"),
    ("CosineAnnealingWarmRestartsLR", dict(total_steps=10), "first_cycle_steps"),
    ("CosineAnnealingWarmRestartsLR", dict(total_steps=10, first_cycle_steps=0), "first_cycle_steps"),
    ("CosineAnnealingWarmRestartsLR", dict(total_steps=10, first_cycle_steps=5, cycle_mult=0.5), r"cycle_mult must be a finite float in \[1.0, inf\)"),
    ("CosineAnnealingWarmRestartsLR", dict(total_steps=10, first_cycle_steps=5, cycle_decay=0.0), "cycle_decay"),
    ("CosineAnnealingWarmRestartsLR", dict(total_steps=10, first_cycle_steps=5, warmup_steps=5), r"warmup_steps must be an int in \[0, 4\]"),
    ("CosineAnnealingWarmRestartsLR", dict(total_steps=10, first_cycle_steps=5, eta_min=-0.1), "eta_min"),
    ("ConstantWarmupLR", dict(total_steps=10, warmup_steps=11), "warmup_steps"),
    ("ConstantWarmupLR", dict(total_steps=0), "total_steps"),
    ("ConstantWarmupLR", dict(total_steps=10, warmup_step=3), "warmup_step"),
]


@pytest.mark.parametrize("name,kwargs,needle", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_arguments_raise_naming_the_argument_and_allowed_values(name, kwargs, needle):
    with pytest.raises((ValueError, TypeError), match=needle):
        cs.SCHEDULERS[name](make_optimizer(), **kwargs)


@pytest.mark.parametrize("name,kw", NEW_CASES[:1] + NEW_CASES[6:8], ids=["wsd", "restarts", "restarts-mult"])
def test_steps_are_validated_and_base_lrs_checked(name, kw):
    s = build(name, kw)
    with pytest.raises((ValueError, TypeError), match="global_step"):
        s.step_to(-1)
    with pytest.raises((ValueError, TypeError), match="step"):
        s.lr_at(2.5)
    with pytest.raises(ValueError, match="base lr"):
        build(name, kw, make_optimizer(lrs=(0.1, float("nan"))))


def test_chained_scheduler_over_new_schedules_is_refused():
    opt = make_optimizer()
    chain = torch.optim.lr_scheduler.ChainedScheduler([cs.ConstantWarmupLR(opt, 10, warmup_steps=2),
                                                       cs.InverseSqrtLR(opt, 10, warmup_steps=2)])
    with pytest.raises(TypeError, match="ComposedLR"):
        chain.step()


# ------------------------------------------------------------------ hypothesis
@st.composite
def new_configs(draw):
    name = draw(st.sampled_from(["WarmupStableDecayLR", "CosineAnnealingWarmRestartsLR", "InverseSqrtLR", "ConstantWarmupLR"]))
    total = draw(st.integers(1, 300))
    if name == "WarmupStableDecayLR":
        w = draw(st.integers(0, total))
        kw = dict(warmup_steps=w, decay_style=draw(st.sampled_from(["linear", "cosine", "1-sqrt"])), min_lr=draw(st.floats(0, 0.01)))
        if draw(st.booleans()):
            kw["decay_steps"] = draw(st.integers(0, total - w))
        else:
            kw["decay_ratio"] = draw(st.floats(0, 1))
    elif name == "CosineAnnealingWarmRestartsLR":
        first = draw(st.integers(1, 80))
        kw = dict(first_cycle_steps=first, cycle_mult=draw(st.sampled_from([1.0, 1.3, 2.0, draw(st.floats(1, 3))])),
                  cycle_decay=draw(st.floats(0.3, 1)), warmup_steps=draw(st.integers(0, first - 1)), eta_min=draw(st.floats(0, 0.01)))
    elif name == "InverseSqrtLR":
        kw = dict(warmup_steps=draw(st.integers(0, total - 1)), timescale=draw(st.one_of(st.none(), st.floats(0.5, 100))),
                  min_lr=draw(st.floats(0, 0.01)))
    else:
        kw = dict(warmup_steps=draw(st.integers(0, total)))
    return name, total, kw


@settings(max_examples=150, deadline=None, derandomize=True)  # the same examples every run
@given(new_configs(), st.lists(st.floats(1e-4, 1.0), min_size=1, max_size=3), st.data())
def test_random_new_configs_match_the_formula_and_resume_exactly(config, lrs, data):
    name, total, kw = config
    sched = cs.SCHEDULERS[name](make_optimizer(len(lrs), lrs=tuple(lrs)), total, **kw)
    steps = total + 10
    table = sched.lr_table(range(steps))
    for t in sorted({0, total // 2, total, steps - 1, data.draw(st.integers(0, steps - 1))}):
        expected = [new_lr(name, kw, b, t, total) for b in lrs]
        assert table[t].tolist() == pytest.approx(expected, rel=1e-9, abs=1e-15)
        assert sched.lr_at(t) == table[t].tolist()
    ceiling = max(lrs) * (1 + 1e-12) + kw.get("min_lr", 0) + kw.get("eta_min", 0)
    assert np.isfinite(table).all() and (table >= 0).all() and (table <= ceiling).all()
    k = data.draw(st.integers(0, steps - 1))
    sched.step_to(k)
    state = json.loads(json.dumps(sched.state_dict()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed = cs.SCHEDULERS[name](make_optimizer(len(lrs), lrs=tuple(lrs)), total, **kw)
    resumed.load_state_dict(state)
    for t in range(k, steps):
        assert resumed.get_last_lr() == table[t].tolist()
        resumed.step()


# ---------------------------------------------------------------- review 12
def test_restarts_with_extreme_cycle_mult_are_bounded_and_never_crash():
    """Item 4: lengths past the float range are clamped (no int64 / C long overflow, no false inf); cycles
    are generated only up to total_steps, and more than MAX_CYCLES of them are refused with a clear error."""
    from colossal_sched.phases import MAX_CYCLES

    for mult in (1e300, 1e308, 1.7e308):
        s = cs.CosineAnnealingWarmRestartsLR(make_optimizer(1, lrs=(0.1,)), 100, 3, cycle_mult=mult)
        steps = list(range(0, 102))
        assert s.lr_table(steps)[:, 0].tolist() == [s.lr_at(t)[0] for t in steps]
        assert s.lr_at(0) == [0.1] and s.lr_at(3) == [0.1] and 0.0 < s.lr_at(50)[0] <= 0.1
    c = cs.ComposedLR(make_optimizer(), 10, phases=[{"type": "restarts", "first_cycle_steps": 3, "cycle_mult": 1e300}])
    assert c.lr_table(range(12)).shape == (12, len(BASE_LRS))
    with pytest.raises(ValueError, match=rf"first_cycle_steps=1 with cycle_mult=1.0000001 makes more than {MAX_CYCLES} cycles"):
        cs.CosineAnnealingWarmRestartsLR(make_optimizer(), 2**62, 1, cycle_mult=1.0000001)
    s = cs.CosineAnnealingWarmRestartsLR(make_optimizer(1, lrs=(1.0,)), 2**62, 1, cycle_mult=2.0)
    assert len(s.joined().phases[0]._cycles[0]) <= 64
    flat = cs.CosineAnnealingWarmRestartsLR(make_optimizer(1, lrs=(1.0,)), 2**62, 1)  # cycle_mult 1: O(1), any count
    assert flat.lr_at(2**62 - 5) == [1.0]


def test_wsd_decay_ratio_rounding_past_2_53_is_clamped():
    """Item 5: float(decay_ratio * (T - W)) may round above T - W: D is clamped to [0, T - W] (also in re-plans)."""
    for T, W in [(2**62, 1), (2**62 - 1, 0), (2**62, 3)]:
        s = cs.WarmupStableDecayLR(make_optimizer(1, lrs=(0.1,)), T, warmup_steps=W, decay_ratio=1.0)
        assert s._decay_length(T) == T - W
        assert s.lr_at(W) == [0.1] and s.lr_at(T) == [0.0]
    s = cs.WarmupStableDecayLR(make_optimizer(1, lrs=(0.1,)), 1000, warmup_steps=0, decay_ratio=1.0)
    s.replan(2**62 - 1, at_step=0)
    assert s.lr_at(2**62 - 1) == [0.0]
