"""Issue #2: every scheduler against its documented formula, by every access path."""
import json

import numpy as np
import pytest
import torch
from conftest import BASE_LRS, make_optimizer
from reference import CONFIGS, onecycle
from reference import lr as ref_lr

import colossal_sched as cs

T = 20
STEPS = range(T + 16)
NAMES = sorted(CONFIGS)


def build(name, optimizer=None, total=T, **extra):
    return cs.SCHEDULERS[name](optimizer or make_optimizer(), total, **{**CONFIGS[name], **extra})


def group_lrs(opt):
    return [g["lr"] for g in opt.param_groups]


def roundtrip(state):
    return json.loads(json.dumps(state))


@pytest.mark.parametrize("name", NAMES)
def test_stepping_follows_documented_formula(name):
    opt = make_optimizer()
    sched = build(name, opt)
    for t in STEPS:
        expected = [ref_lr(name, CONFIGS[name], b, t, T) for b in BASE_LRS]
        assert group_lrs(opt) == pytest.approx(expected, rel=1e-12, abs=1e-15), f"step {t}"
        assert sched.get_last_lr() == group_lrs(opt)
        assert sched.last_epoch == t
        sched.step()


@pytest.mark.parametrize("name", NAMES)
def test_lr_at_table_and_step_to_agree_with_stepping(name):
    opt = make_optimizer()
    sched = build(name, opt)
    stepped = []
    for _ in STEPS:
        stepped.append(group_lrs(opt))
        sched.step()
    assert [sched.lr_at(t) for t in STEPS] == stepped  # pure and bit-identical
    table = sched.lr_table(list(STEPS))
    assert table.shape == (len(STEPS), len(BASE_LRS))
    assert (table == np.array(stepped)).all()  # bit for bit, pow included
    jumper = build(name)
    for t in [7, 3, T + 9, 0, T, 11]:
        jumper.step_to(t)
        assert group_lrs(jumper.optimizer) == stepped[t] and jumper.last_epoch == t


@pytest.mark.parametrize("name", NAMES)
def test_resume_from_json_state_at_every_step_is_bit_exact(name):
    opt = make_optimizer()
    sched = build(name, opt)
    reference = []
    states = []
    for _ in STEPS:
        reference.append(group_lrs(opt))
        states.append(roundtrip(sched.state_dict()))
        sched.step()
    for k in [0, 1, 4, 5, 9, T - 1, T, T + 3]:
        opt2 = make_optimizer()
        resumed = build(name, opt2)
        for g in opt2.param_groups:
            g["lr"] = 123.0  # the optimizer's own lr must not matter (a restore may have set it)
        resumed.load_state_dict(states[k])
        assert group_lrs(opt2) == reference[k]
        for t in range(k + 1, len(STEPS)):
            resumed.step()
            assert group_lrs(opt2) == reference[t], f"resumed at {k}, step {t}"


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_is_plain_json_with_every_hyperparameter(name):
    sched = build(name)
    sched.step()
    state = sched.state_dict()
    assert json.loads(json.dumps(state)) == state
    assert state["class"] == name and state["last_epoch"] == 1 and state["format_version"] == 1
    assert state["base_lrs"] == list(sched.base_lrs)
    for key, value in CONFIGS[name].items():
        if key != "lr_lambda":
            assert state["hyperparams"][key] == value
    assert state["hyperparams"]["total_steps"] == T


def test_past_total_steps_every_schedule_holds_its_end_value():
    for name in NAMES:
        sched = build(name)
        end = sched.lr_at(T)
        assert all(sched.lr_at(t) == end for t in range(T, T + 50)), name


def test_zero_length_phase_is_at_its_end_value():
    s = cs.FlatAnnealingLR(make_optimizer(1, lrs=(1.0,)), 10, pct_start=1.0, eta_min=0.1)
    assert s.lr_at(9) == [1.0] and s.lr_at(10) == [0.1]
    s = cs.FlatAnnealingWarmupLR(make_optimizer(1, lrs=(1.0,)), 10, warmup_steps=2, pct_start=1.0, eta_min=0.1)
    assert s.lr_at(9) == [1.0] and s.lr_at(10) == [0.1]
    s = cs.OneCycleLR(make_optimizer(1, lrs=(1.0,)), 10, pct_start=0.1)  # phase 1 ends at step 0: 0/0 in torch
    assert s.lr_at(0) == [pytest.approx(1.0)]


# ------------------------------------------------------------------ OneCycleLR
@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_onecycle_lr_and_momentum_match_torch(kind, three_phase, strategy):
    opt, topt = make_optimizer(kind=kind), make_optimizer(kind=kind)
    ours = cs.OneCycleLR(opt, T, pct_start=0.25, anneal_strategy=strategy, three_phase=three_phase)
    theirs = torch.optim.lr_scheduler.OneCycleLR(
        topt, list(BASE_LRS), total_steps=T, pct_start=0.25, anneal_strategy=strategy, three_phase=three_phase
    )
    key = (lambda g: g["betas"][0]) if kind == "adam" else (lambda g: g["momentum"])
    for t in range(T):  # torch agrees up to T - 1; at T it overshoots, past T it raises
        assert group_lrs(opt) == pytest.approx(group_lrs(topt), rel=1e-12)
        assert [key(g) for g in opt.param_groups] == pytest.approx([key(g) for g in topt.param_groups], rel=1e-12)
        expected = [onecycle(t, T, b, pct_start=0.25, anneal_strategy=strategy, three_phase=three_phase) for b in BASE_LRS]
        assert group_lrs(opt) == pytest.approx([e[0] for e in expected], rel=1e-12)
        assert ours.momentum_at(t) == pytest.approx([e[1] for e in expected], rel=1e-12)
        ours.step()
        if t < T - 1:
            theirs.step()
    table = ours.momentum_table(range(T))
    assert table.shape == (T, 4)
    assert table[5].tolist() == pytest.approx(ours.momentum_at(5), rel=1e-15)


def test_onecycle_epochs_and_steps_per_epoch_give_total_steps():
    s = cs.OneCycleLR(make_optimizer(), None, epochs=4, steps_per_epoch=5)
    assert s.total_steps == 20
    with pytest.raises(ValueError, match="epochs"):
        cs.OneCycleLR(make_optimizer(), None, epochs=4)


def test_onecycle_without_momentum_cycling_leaves_momentum_alone():
    opt = make_optimizer(kind="adagrad")
    s = cs.OneCycleLR(opt, T, cycle_momentum=False)
    assert s.momentum_at(3) is None and s.momentum_table([1, 2]) is None


# ---------------------------------------------------------------- resume rules
def test_last_epoch_resumes_at_that_step_with_torch_initial_lr_rule():
    opt = make_optimizer()
    first = build("CosineAnnealingWarmupLR", opt)
    for _ in range(7):
        first.step()
    again = build("CosineAnnealingWarmupLR", opt, last_epoch=7)
    assert again.last_epoch == 7 and group_lrs(opt) == first.lr_at(7)
    again.step()
    assert group_lrs(opt) == first.lr_at(8)


def test_last_epoch_without_initial_lr_is_a_clear_error():
    with pytest.raises(KeyError, match=r"param_groups\[0\] has no 'initial_lr'"):
        build("CosineAnnealingLR", make_optimizer(), last_epoch=5)
    with pytest.raises(ValueError, match="max_lr"):
        cs.OneCycleLR(make_optimizer(), T, last_epoch=5)


def test_load_refuses_another_class_and_other_hyperparameters():
    state = build("CosineAnnealingLR").state_dict()
    with pytest.raises(cs.ScheduleMismatchError, match="class"):
        build("PolynomialLR").load_state_dict(state)
    other = cs.CosineAnnealingLR(make_optimizer(), 30, eta_min=0.02)
    with pytest.raises(ValueError) as err:
        other.load_state_dict(state)
    assert {f[0] for f in err.value.fields} == {"total_steps", "eta_min"}
    assert "total_steps: saved=20, current=30" in str(err.value)


def test_strict_false_accepts_and_adopts_the_saved_schedule():
    saved = build("CosineAnnealingLR")
    for _ in range(6):
        saved.step()
    other = cs.CosineAnnealingLR(make_optimizer(), 30, eta_min=0.02)
    with pytest.warns(UserWarning, match="total_steps"):
        other.load_state_dict(saved.state_dict(), strict=False)
    assert other.total_steps == T and other.get_last_lr() == saved.get_last_lr()
    foreign = cs.PolynomialLR(make_optimizer(), T)
    with pytest.warns(UserWarning, match="class"):
        foreign.load_state_dict(saved.state_dict(), strict=False)
    assert foreign.last_epoch == 6 and foreign.total_steps == T


def test_load_with_another_number_of_groups_is_refused():
    state = build("StepLR").state_dict()
    with pytest.raises(ValueError, match="param group"):
        build("StepLR", make_optimizer(2)).load_state_dict(state)


@pytest.mark.parametrize("name", ["CosineAnnealingLR", "StepLR", "ExponentialLR", "MultiStepLR", "OneCycleLR",
                                  "LambdaLR", "MultiplicativeLR"])
def test_loads_torch_scheduler_states_of_the_same_name(name):
    torch_args = {
        "CosineAnnealingLR": dict(T_max=T, eta_min=0.01), "StepLR": dict(step_size=3, gamma=0.5),
        "ExponentialLR": dict(gamma=0.9), "MultiStepLR": dict(milestones=[5, 12], gamma=0.5),
        "OneCycleLR": dict(max_lr=list(BASE_LRS), total_steps=T), "LambdaLR": dict(lr_lambda=CONFIGS["LambdaLR"]["lr_lambda"]),
        "MultiplicativeLR": dict(lr_lambda=CONFIGS["MultiplicativeLR"]["lr_lambda"]),
    }[name]
    topt = make_optimizer()
    theirs = getattr(torch.optim.lr_scheduler, name)(topt, **torch_args)
    for _ in range(9):
        theirs.step()
    ours = build(name)
    ours.load_state_dict(theirs.state_dict())
    assert ours.last_epoch == 9
    assert ours.get_last_lr() == pytest.approx(group_lrs(topt), rel=1e-12)
    if name == "StepLR":
        with pytest.raises(cs.ScheduleMismatchError, match="step_size"):
            cs.StepLR(make_optimizer(), T, step_size=4, gamma=0.5).load_state_dict(theirs.state_dict())


def test_missing_or_wrong_state_is_a_clear_error():
    sched = build("CosineAnnealingLR")
    with pytest.raises(ValueError, match="not a scheduler state"):
        sched.load_state_dict({"foo": 1})
    state = sched.state_dict()
    with pytest.raises(ValueError, match="format_version"):
        sched.load_state_dict({**state, "format_version": 99})
    with pytest.raises(ValueError, match="last_epoch"):
        sched.load_state_dict({**state, "last_epoch": "7"})


# ------------------------------------------------------------------ bad input
BAD = [
    ("CosineAnnealingLR", dict(total_steps=0), "total_steps"),
    ("CosineAnnealingLR", dict(total_steps=10.5), "total_steps"),
    ("CosineAnnealingLR", dict(total_steps="10"), "total_steps"),
    ("CosineAnnealingLR", dict(total_steps=10, eta_min=-0.1), "eta_min"),
    ("CosineAnnealingLR", dict(total_steps=10, eta_min=float("nan")), "eta_min"),
    ("CosineAnnealingWarmupLR", dict(total_steps=10, warmup_steps=10), "warmup_steps"),
    ("CosineAnnealingWarmupLR", dict(total_steps=10, warmup_steps=-1), "warmup_steps"),
    ("LinearWarmupLR", dict(total_steps=10, warmup_steps=11), "warmup_steps"),
    ("MultiStepWarmupLR", dict(total_steps=10, warmup_steps=11, milestones=[12]), "warmup_steps"),
    ("FlatAnnealingLR", dict(total_steps=10, pct_start=1.5), "pct_start"),
    ("FlatAnnealingWarmupLR", dict(total_steps=10, pct_start=-0.1), "pct_start"),
    ("MultiStepLR", dict(total_steps=10), "milestones"),
    ("MultiStepLR", dict(total_steps=10, milestones=[]), "milestones"),
    ("MultiStepLR", dict(total_steps=10, milestones=[5, 3]), "milestones"),
    ("MultiStepLR", dict(total_steps=10, milestones=[-1, 3]), "milestones"),
    ("MultiStepWarmupLR", dict(total_steps=10, warmup_steps=4, milestones=[2, 6]), "milestones"),
    ("MultiStepLR", dict(total_steps=10, milestones=[3], gamma=0), "gamma"),
    ("StepLR", dict(total_steps=10, gamma=-0.5), "gamma"),
    ("ExponentialLR", dict(total_steps=10, gamma=0.0), "gamma"),
    ("PolynomialLR", dict(total_steps=10, end_lr=-1.0), "end_lr"),
    ("PolynomialLR", dict(total_steps=10, power=0), "power"),
    ("PolynomialWarmupLR", dict(total_steps=10, warmup_steps=10), "warmup_steps"),
    ("OneCycleLR", dict(total_steps=10, anneal_strategy="cosine"), "anneal_strategy"),
    ("OneCycleLR", dict(total_steps=10, div_factor=0), "div_factor"),
    ("OneCycleLR", dict(total_steps=10, final_div_factor=-1.0), "final_div_factor"),
    ("OneCycleLR", dict(total_steps=10, pct_start=2.0), "pct_start"),
    ("StepLR", dict(total_steps=10, step_size=0), "step_size"),
    ("LambdaLR", dict(total_steps=10), "lr_lambda"),
    ("LambdaLR", dict(total_steps=10, lr_lambda=3), "lr_lambda"),
    ("MultiplicativeLR", dict(total_steps=10, lr_lambda=[lambda t: 1.0] * 3), "lr_lambda"),
]


@pytest.mark.parametrize("name,kwargs,argument", BAD, ids=[f"{b[0]}-{b[2]}-{i}" for i, b in enumerate(BAD)])
def test_bad_arguments_raise_naming_the_argument(name, kwargs, argument):
    with pytest.raises((ValueError, TypeError), match=argument):
        cs.SCHEDULERS[name](make_optimizer(), **kwargs)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("LambdaLR", "MultiplicativeLR", "StepLR", "ExponentialLR",
                                                                 "CosineAnnealingWarmupLR")])
def test_unknown_keyword_is_a_type_error_naming_it(name):
    with pytest.raises(TypeError, match="warmup_step"):
        build(name, warmup_step=3)
    build(name, num_steps_per_epoch=7)  # accepted for ColossalAI compatibility


def test_unknown_keyword_on_closed_signatures():
    with pytest.raises(TypeError, match="warmup_step"):
        cs.CosineAnnealingWarmupLR(make_optimizer(), 10, warmup_step=3)


def test_onecycle_cycle_momentum_needs_momentum():
    with pytest.raises(ValueError, match="cycle_momentum"):
        cs.OneCycleLR(make_optimizer(kind="adagrad"), 10)


@pytest.mark.parametrize("bad_lr", [float("nan"), float("inf"), -0.1])
def test_bad_base_lr_is_refused(bad_lr):
    with pytest.raises(ValueError, match="base lr"):
        cs.CosineAnnealingLR(make_optimizer(lrs=(0.1, bad_lr)), 10)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_lambda_returning_non_finite_raises_and_never_reaches_the_optimizer(bad):
    opt = make_optimizer(1)
    s = cs.LambdaLR(opt, 10, lr_lambda=lambda t: bad if t == 3 else 1.0)
    s.step(), s.step()
    with pytest.raises(ValueError, match="finite"):
        s.step()
    assert opt.param_groups[0]["lr"] == BASE_LRS[0] and s.last_epoch == 2


def test_steps_must_be_non_negative_ints():
    s = build("StepLR")
    for bad in (-1, 2.5, "3"):
        with pytest.raises((ValueError, TypeError), match="step"):
            s.lr_at(bad)
        with pytest.raises((ValueError, TypeError), match="global_step"):
            s.step_to(bad)
    with pytest.raises(ValueError, match="steps"):
        s.lr_table([1, -2])


# ------------------------------------------------------------------- builder
def test_build_lr_scheduler_from_colossalai_style_config():
    config = {"type": "CosineAnnealingWarmupLR", "total_steps": 100, "warmup_steps": 10}
    s = cs.build_lr_scheduler(config, make_optimizer())
    assert isinstance(s, cs.CosineAnnealingWarmupLR) and s.warmup_steps == 10
    assert config == {"type": "CosineAnnealingWarmupLR", "total_steps": 100, "warmup_steps": 10}
    with pytest.raises(ValueError, match="CosineAnnealingLR"):
        cs.build_lr_scheduler({"type": "Cosine", "total_steps": 10}, make_optimizer())


def test_tensor_lr_is_updated_in_place():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([p], lr=torch.tensor(0.1))
    lr_tensor = opt.param_groups[0]["lr"]
    s = cs.CosineAnnealingLR(opt, 10)
    s.step_to(5)
    assert opt.param_groups[0]["lr"] is lr_tensor and float(lr_tensor) == pytest.approx(s.lr_at(5)[0])


def test_multiplicative_resumes_from_saved_running_factor():
    calls = []

    def f(t):
        calls.append(t)
        return 0.9

    s = cs.MultiplicativeLR(make_optimizer(1), 100, lr_lambda=f)
    for _ in range(40):
        s.step()
    state = roundtrip(s.state_dict())
    assert state["factors"] == [pytest.approx(0.9**40)]
    calls.clear()
    again = cs.MultiplicativeLR(make_optimizer(1), 100, lr_lambda=f)
    calls.clear()
    again.load_state_dict(state)
    assert calls == []  # no replay from step 0
    again.step()
    assert calls == [41] and again.get_last_lr() == [state["base_lrs"][0] * state["factors"][0] * 0.9]


def test_signature_defaults_and_configure_defaults_never_drift_apart():
    """Issue 19: a default is declared in the constructor (ColossalAI's signature) and in ``_configure``
    (what a keyword through ``**kwargs`` or ``colossal-sched list`` sees); both must be the same value of the same type."""
    import inspect

    for name, cls in cs.SCHEDULERS.items():
        init = inspect.signature(cls.__init__).parameters
        for p in inspect.signature(cls._configure).parameters.values():
            theirs = init.get(p.name)
            if theirs is None or theirs.default is p.empty or p.default is p.empty:
                continue
            assert type(theirs.default) is type(p.default) and theirs.default == p.default, (name, p.name, theirs.default, p.default)
