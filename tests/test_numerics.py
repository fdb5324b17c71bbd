"""Issue #10: no non-finite, negative or silently changed lr reaches the optimizer; every entry point validates."""
import json
import math
import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import BASE_LRS, make_optimizer
from reference import CONFIGS

import colossal_sched as cs
from colossal_sched.builder import COLOSSALAI_SCHEDULERS
from colossal_sched.errors import CheckpointError, InvalidLRError
import forked


CLI = [sys.executable, "-m", "colossal_sched.cli"]
T = 20


def sgd(lr=0.1, momentum=0.9, groups=1):
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(groups)]
    return torch.optim.SGD([{"params": [p]} for p in params], lr=lr, momentum=momentum)


def lrs(opt):
    return [g["lr"] for g in opt.param_groups]


def build(name, opt=None, total=T, **extra):
    return cs.SCHEDULERS[name](opt or make_optimizer(), total, **{**CONFIGS[name], **extra})


def first_overflow(gamma, base, kmax):
    """Independent reference: the first k with gamma**k or base*gamma**k not finite (libm pow)."""
    for k in range(kmax + 1):
        try:
            p = math.pow(gamma, k)
        except OverflowError:
            return k
        if not math.isfinite(p) or not math.isfinite(base * p):
            return k
    return None


# ------------------------------------------------- 1. finite and >= 0 at every step
def test_exponential_gamma_above_one_overflowing_within_total_steps_is_refused_naming_gamma_T_and_step():
    step = first_overflow(1.1, 0.1, 10000)
    assert step == 7448
    opt = sgd()
    with pytest.raises(InvalidLRError) as err:
        cs.ExponentialLR(opt, total_steps=10000, gamma=1.1)
    msg = str(err.value)
    assert "gamma=1.1" in msg and "total_steps=10000" in msg and f"step {step}" in msg
    assert isinstance(err.value, ValueError) and lrs(opt) == [0.1] and "initial_lr" not in opt.param_groups[0]


def test_exponential_gamma_above_one_is_legal_while_finite_and_lr_table_never_overflows():
    s = cs.ExponentialLR(sgd(), total_steps=7447, gamma=1.1)  # the last finite step
    s.step_to(7546)  # past T: holds base * gamma**T
    assert s.get_last_lr() == [0.1 * math.pow(1.1, 7447)] and math.isfinite(s.get_last_lr()[0])
    table = s.lr_table([0, 1])
    assert table.tolist() == [[0.1], [0.1 * 1.1]]
    full = s.lr_table(range(7447 + 20))
    assert np.isfinite(full).all() and (full >= 0).all()
    assert full[-1, 0] == s.lr_at(7447)[0]


@pytest.mark.parametrize("name,kwargs,step", [
    ("StepLR", dict(step_size=10, gamma=10.0), 10 * first_overflow(10.0, 0.1, 1000)),
    ("MultiStepLR", dict(milestones=[5, 10, 20], gamma=1e200), 10),
    ("MultiStepWarmupLR", dict(warmup_steps=2, milestones=[5, 10, 20], gamma=1e200), 10),
])  # fmt: skip
def test_other_powers_overflowing_within_total_steps_are_refused(name, kwargs, step):
    with pytest.raises(InvalidLRError, match=rf"gamma=.* total_steps=10000.*|step {step}") as err:
        cs.SCHEDULERS[name](sgd(), 10000, **kwargs)
    assert f"step {step}" in str(err.value) and "total_steps=10000" in str(err.value)
    cs.SCHEDULERS[name](sgd(), step - 1, **kwargs)  # legal: the overflow lies past total_steps


def test_cli_plot_of_an_overflowing_schedule_is_one_line_status_2():
    out = forked.run(CLI + ["plot", "ExponentialLR", "--total-steps", "10000", "--param", "gamma=1.1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and "gamma=1.1" in out.stderr and "7448" in out.stderr


def test_multiplicative_lambda_10_raises_at_the_overflow_step_and_keeps_the_lr():
    opt = sgd()
    s = cs.MultiplicativeLR(opt, 1000, lr_lambda=lambda t: 10)
    s.step_to(308)
    before = lrs(opt)
    assert math.isfinite(before[0])
    with pytest.raises(InvalidLRError, match="step 309") as err:
        s.step()
    assert "inf" in str(err.value)
    assert lrs(opt) == before and s.last_epoch == 308
    with pytest.raises(InvalidLRError, match="step 309"):
        s.lr_table([0, 400])


def test_onecycle_final_div_factor_1e_320_is_refused_and_nothing_written():
    opt = sgd()
    with pytest.raises(InvalidLRError, match="final_div_factor"):
        cs.OneCycleLR(opt, 100, final_div_factor=1e-320)
    assert lrs(opt) == [0.1] and opt.param_groups[0]["momentum"] == 0.9 and "max_lr" not in opt.param_groups[0]
    with pytest.raises(InvalidLRError, match="div_factor"):
        cs.OneCycleLR(sgd(), 100, div_factor=1e-320)


def test_lambda_returning_negative_raises_at_that_step_and_keeps_the_lr():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    with pytest.raises(InvalidLRError, match=r"returned -1.0 at step 0"):
        cs.LambdaLR(opt, 10, lr_lambda=lambda t: -1)
    assert lrs(opt) == [0.1] and "initial_lr" not in opt.param_groups[0]
    s = cs.LambdaLR(opt, 10, lr_lambda=lambda t: -1.0 if t == 3 else 0.5)
    s.step(), s.step()
    with pytest.raises(InvalidLRError, match=r"lr_lambda\[0\]\(3\) returned -1.0 at step 3"):
        s.step()
    assert lrs(opt) == [0.05] and s.last_epoch == 2
    with pytest.raises(InvalidLRError, match="step 3"):
        s.lr_at(3)
    with pytest.raises(InvalidLRError, match="step 3"):
        s.step_to(3)
    assert lrs(opt) == [0.05]
    m = cs.MultiplicativeLR(sgd(), 10, lr_lambda=lambda t: -2.0 if t == 2 else 1.0)
    m.step()
    with pytest.raises(InvalidLRError, match=r"returned -2.0 at step 2"):
        m.step()
    assert lrs(m.optimizer) == [0.1]


def test_lambda_returning_a_non_number_names_it():
    with pytest.raises(TypeError, match=r"lr_lambda\[0\]\(0\) returned 'x'"):
        cs.LambdaLR(sgd(), 10, lr_lambda=lambda t: "x")


# ---------------------------------------------------------------- 2. momentum bounds
@pytest.mark.parametrize("kwargs,argument", [
    (dict(base_momentum=1.5), "base_momentum"), (dict(base_momentum=-0.1), "base_momentum"),
    (dict(max_momentum=1.0), "max_momentum"), (dict(max_momentum=float("nan")), "max_momentum"),
    (dict(base_momentum=0.96, max_momentum=0.95), "base_momentum must be <= max_momentum"),
    (dict(base_momentum=[0.8, 1.2]), "base_momentum"),
])  # fmt: skip
def test_momentum_bounds(kwargs, argument):
    opt = torch.optim.Adam([{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(2)], lr=0.1)
    with pytest.raises(ValueError, match=argument):
        cs.OneCycleLR(opt, 10, **kwargs)
    assert all(g["betas"] == (0.9, 0.999) for g in opt.param_groups)


def test_momentum_bounds_accept_zero_and_equal():
    s = cs.OneCycleLR(sgd(), 10, base_momentum=0.0, max_momentum=0.0)
    assert s.momentum_table(range(12)).max() == 0.0


def test_onecycle_turning_momentum_on_warns_once():
    opt = sgd(momentum=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = cs.OneCycleLR(opt, 10)
        for _ in range(5):
            s.step()
    mine = [w for w in caught if "turns momentum on" in str(w.message)]
    assert len(mine) == 1 and "cycle_momentum=False" in str(mine[0].message)
    assert opt.param_groups[0]["momentum"] > 0.85  # as torch does
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cs.OneCycleLR(sgd(momentum=0), 10, cycle_momentum=False)
        cs.OneCycleLR(sgd(momentum=0.9), 10)


# ------------------------------------------------------------- 3. one step validator
BAD_STEPS = [True, False, 7.0, float("nan"), -1, 2**62 + 1, "3", None, np.array([1, 2]), torch.tensor(7.0),
             np.float64(7.0), torch.tensor([1, 2])]
GOOD_STEPS = [7, np.int64(7), np.uint8(7), np.int32(7), torch.tensor(7), torch.tensor(7, dtype=torch.int32)]


@pytest.mark.parametrize("bad", BAD_STEPS, ids=repr)
def test_every_entry_point_refuses_a_bad_step_naming_the_argument(bad):
    s = build("StepLR")
    s.step_to(5)
    before = lrs(s.optimizer)
    for call, name in [(s.step_to, "global_step"), (s.lr_at, "step"), (s.momentum_at, "step"), (s.step, "epoch")]:
        if bad is None and call == s.step:
            continue  # step(None) is the next step
        with pytest.raises((ValueError, TypeError), match=name):
            call(bad)
        assert lrs(s.optimizer) == before and s.last_epoch == 5
    if bad is not None and not (isinstance(bad, int) and bad == -1):
        with pytest.raises((ValueError, TypeError), match="last_epoch"):
            s.last_epoch = bad
    with pytest.raises(CheckpointError, match="last_epoch"):
        s.load_state_dict({**s.state_dict(), "last_epoch": bad if not isinstance(bad, int) or bad != -1 else -2})
    assert s.last_epoch == 5 and lrs(s.optimizer) == before


@pytest.mark.parametrize("good", GOOD_STEPS, ids=repr)
def test_integer_scalars_become_plain_ints(good):
    s = build("OneCycleLR")
    s.step_to(good)
    assert type(s.last_epoch) is int and s.last_epoch == 7
    json.dumps(s.state_dict())
    assert s.lr_at(good) == s.lr_at(7) and s.momentum_at(good) == s.momentum_at(7)
    s.last_epoch = good
    assert type(s.last_epoch) is int
    s.step(good)
    assert type(s.last_epoch) is int and lrs(s.optimizer) == s.lr_at(7)


def test_repeated_step_is_validated_every_time():
    s = build("CosineAnnealingLR")
    s.step_to(7)
    for bad in (7.0, False, np.float32(7)):
        with pytest.raises(TypeError, match="global_step"):
            s.step_to(bad)
    assert type(s.last_epoch) is int and s.last_epoch == 7


def test_last_epoch_is_a_validated_property():
    s = build("LinearWarmupLR")
    s.step_to(4)
    before = lrs(s.optimizer)
    with pytest.raises(ValueError, match="last_epoch"):
        s.last_epoch = -7
    assert s.last_epoch == 4 and lrs(s.optimizer) == before
    s.step()
    assert all(lr >= 0 for lr in lrs(s.optimizer)) and s.last_epoch == 5
    s.last_epoch = -1  # torch's "before the first step" (SequentialLR undoes the initial step this way)
    s.step()
    assert s.last_epoch == 0 and lrs(s.optimizer) == s.lr_at(0)


@pytest.mark.parametrize("bad", [[1.0, 2.0], [True, False], [1, -2], [[1]], [2**62 + 1], "12", np.array([0.5]),
                                 [1, 2.5], np.array([1, 2], dtype=object)], ids=repr)
def test_lr_table_refuses_anything_but_integer_steps(bad):
    s = build("ExponentialLR")
    with pytest.raises((ValueError, TypeError), match="steps"):
        s.lr_table(bad)


def test_lr_table_accepts_integer_arrays_of_any_width():
    s = build("ExponentialLR")
    expected = s.lr_table([0, 3, 25])
    for steps in (np.array([0, 3, 25], dtype=np.int32), np.array([0, 3, 25], dtype=np.uint16), range(0, 26, 3),
                  torch.tensor([0, 3, 25]), (np.int64(0), 3, 25)):
        table = s.lr_table(steps)
        assert table.shape[1] == len(BASE_LRS)
    assert (s.lr_table(np.array([0, 3, 25], dtype=np.uint16)) == expected).all()
    assert s.lr_table([]).shape == (0, len(BASE_LRS))


# ----------------------------------------------------------- 4. MultiplicativeLR is pure
def test_multiplicative_lr_at_is_pure_after_a_resume():
    f = lambda t: 0.5 if t % 3 else 1.25  # noqa: E731
    s = cs.MultiplicativeLR(make_optimizer(), 50, lr_lambda=f)
    for _ in range(10):
        s.step()
    resumed = cs.MultiplicativeLR(make_optimizer(), 50, lr_lambda=f)
    resumed.load_state_dict(json.loads(json.dumps(s.state_dict())))
    a = resumed.lr_at(11)
    resumed.lr_at(3)
    assert resumed.lr_at(11) == a == s.lr_at(11)
    resumed.lr_at(40)
    resumed.lr_at(0)
    assert resumed.lr_at(11) == a
    table = resumed.lr_table(range(60))
    assert (table == np.array([resumed.lr_at(t) for t in range(60)])).all()
    assert (table[::-1] == resumed.lr_table(range(59, -1, -1))).all()


def test_multiplicative_lr_at_is_pure_after_a_torch_state():
    f = lambda t: 0.9  # noqa: E731
    theirs = torch.optim.lr_scheduler.MultiplicativeLR(sgd(), f)
    for _ in range(10):
        theirs.step()
    ours = cs.MultiplicativeLR(sgd(), 100, lr_lambda=f)
    ours.load_state_dict(theirs.state_dict())
    a, b = ours.lr_at(11), ours.lr_at(3)
    assert ours.lr_at(11) == a and ours.lr_at(3) == b
    assert (ours.lr_table([11, 3, 50]) == np.array([a, b, ours.lr_at(50)])).all()
    assert a == pytest.approx([0.1 * 0.9**11], rel=1e-12)


@pytest.mark.parametrize("factor", [lambda t: 0.97, lambda t: 1.03 if t % 2 else 0.5, lambda t: 1, lambda t: np.float64(0.9),
                                    lambda t: 0.0 if t == 5 else 0.8, [lambda t: 0.9, lambda t: 1.1, lambda t: 0.5]])
def test_multiplicative_step_agrees_with_the_table_and_calls_each_function_once_a_step(factor):
    """step()'s path for the next step (one pass where one function's factor is a float in [0, 1], else _times)."""
    calls = []
    fns = [(lambda f: lambda t: calls.append(t) or f(t))(f) for f in (factor if isinstance(factor, list) else [factor])]
    opt = make_optimizer(len(fns) if len(fns) > 1 else 3)
    s = cs.MultiplicativeLR(opt, 3000, lr_lambda=fns if len(fns) > 1 else fns[0])
    calls.clear()
    stepped = [lrs(opt)]
    for _ in range(2100):  # past two kept products (every 1024 steps)
        s.step()
        stepped.append(lrs(opt))
    assert len(calls) == 2100 * len(fns)
    assert (s.lr_table(range(2101)) == np.array(stepped)).all()
    assert s.lr_at(1500) == stepped[1500] and s.lr_at(2100) == stepped[2100]


def test_multiplicative_jump_costs_its_distance_once():
    calls = []

    def f(t):
        calls.append(t)
        return 0.9999

    s = cs.MultiplicativeLR(sgd(), 10**6, lr_lambda=f)
    calls.clear()
    s.step_to(5000)
    assert len(calls) == 5000
    calls.clear()
    s.step_to(5000), s.lr_at(5000)
    assert calls == []
    s.step_to(4000)  # from the product cached at 3072
    assert len(calls) == 4000 - 3072
    calls.clear()
    s.lr_at(3)
    assert calls == [1, 2, 3]
    calls.clear()
    s.step_to(5001)
    assert calls == [5001]


# -------------------------------------------------------------- 5. foreign states
CAI_KW = {
    "CosineAnnealingLR": dict(eta_min=0.01), "CosineAnnealingWarmupLR": dict(warmup_steps=5, eta_min=0.01),
    "FlatAnnealingLR": dict(pct_start=0.5), "FlatAnnealingWarmupLR": dict(warmup_steps=4, pct_start=0.5, eta_min=0.01),
    "LinearWarmupLR": dict(warmup_steps=5), "MultiStepLR": dict(milestones=[5, 12], gamma=0.5),
    "MultiStepWarmupLR": dict(warmup_steps=4, milestones=[5, 12], gamma=0.5), "OneCycleLR": dict(pct_start=0.4),
    "PolynomialLR": dict(power=2.0, end_lr=0.001), "PolynomialWarmupLR": dict(warmup_steps=5, power=2.0),
    "LambdaLR": dict(lr_lambda=lambda t: 0.9**t), "MultiplicativeLR": dict(lr_lambda=lambda t: 0.95),
    "StepLR": dict(step_size=3, gamma=0.5), "ExponentialLR": dict(gamma=0.9),
}  # fmt: skip
TORCH_KW = {
    "CosineAnnealingLR": (dict(T_max=T, eta_min=0.01), dict(eta_min=0.01)),
    "StepLR": (dict(step_size=3, gamma=0.5), dict(step_size=3, gamma=0.5)),
    "MultiStepLR": (dict(milestones=[5, 12], gamma=0.5), dict(milestones=[5, 12], gamma=0.5)),
    "ExponentialLR": (dict(gamma=0.9), dict(gamma=0.9)),
    "PolynomialLR": (dict(total_iters=T, power=2.0), dict(power=2.0, end_lr=0.0)),
    "LambdaLR": (dict(lr_lambda=lambda t: 0.9**t), dict(lr_lambda=lambda t: 0.9**t)),
    "MultiplicativeLR": (dict(lr_lambda=lambda t: 0.95), dict(lr_lambda=lambda t: 0.95)),
    "OneCycleLR": (dict(max_lr=0.1, total_steps=T, pct_start=0.4), dict(pct_start=0.4)),
}  # fmt: skip
CAI_FOLLOWS_FORMULA = {"CosineAnnealingLR", "LinearWarmupLR", "MultiStepLR", "MultiStepWarmupLR", "OneCycleLR",
                       "PolynomialLR", "PolynomialWarmupLR", "LambdaLR", "MultiplicativeLR", "StepLR", "ExponentialLR"}


def colossalai_state(name, steps=9):
    import colossalai.nn.lr_scheduler as C

    theirs = getattr(C, name)(sgd(), T, **CAI_KW[name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(steps):
            theirs.step()
    return theirs


@pytest.mark.parametrize("name", sorted(COLOSSALAI_SCHEDULERS))
def test_colossalai_states_round_trip_into_the_same_name_only(name):
    theirs = colossalai_state(name)
    ours = cs.SCHEDULERS[name](sgd(), T, **CAI_KW[name])
    ours.load_state_dict(theirs.state_dict())
    assert ours.last_epoch == 9 and ours.get_last_lr() == ours.lr_at(9) == lrs(ours.optimizer)
    if name in CAI_FOLLOWS_FORMULA:
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-9)
    again = cs.SCHEDULERS[name](sgd(), T, **CAI_KW[name])
    again.load_state_dict(json.loads(json.dumps(ours.state_dict())))
    assert again.get_last_lr() == ours.get_last_lr()
    for other in sorted(set(COLOSSALAI_SCHEDULERS) - {name}):
        wrong = cs.SCHEDULERS[other](sgd(), T, **CAI_KW[other])
        with pytest.raises(cs.ScheduleMismatchError):
            wrong.load_state_dict(theirs.state_dict())
        assert wrong.last_epoch == 0


@pytest.mark.parametrize("name", sorted(TORCH_KW))
def test_torch_states_round_trip_into_the_same_name_only(name):
    torch_kw, our_kw = TORCH_KW[name]
    opt = sgd()
    theirs = getattr(torch.optim.lr_scheduler, name)(opt, **torch_kw)
    for _ in range(9):
        opt.step()
        theirs.step()
    ours = cs.SCHEDULERS[name](sgd(), T, **our_kw)
    ours.load_state_dict(theirs.state_dict())
    assert ours.last_epoch == 9 and ours.get_last_lr() == pytest.approx(lrs(opt), rel=1e-9)
    for other in sorted(set(COLOSSALAI_SCHEDULERS) - {name}):
        kw = TORCH_KW[other][1] if other in TORCH_KW else CAI_KW[other]
        with pytest.raises(cs.ScheduleMismatchError):
            cs.SCHEDULERS[other](sgd(), T, **kw).load_state_dict(theirs.state_dict())


def test_foreign_states_named_in_the_issue_are_refused():
    step_state = colossalai_state("StepLR").state_dict()
    with pytest.raises(cs.ScheduleMismatchError, match="class"):
        cs.ExponentialLR(sgd(), T, gamma=0.5).load_state_dict(step_state)
    torch_step = torch.optim.lr_scheduler.StepLR(sgd(), 3, 0.5).state_dict()
    with pytest.raises(cs.ScheduleMismatchError, match="class"):
        cs.LambdaLR(sgd(), T, lr_lambda=lambda t: 1.0).load_state_dict(torch_step)
    torch_cos = torch.optim.lr_scheduler.CosineAnnealingLR(sgd(), T).state_dict()
    with pytest.raises(cs.ScheduleMismatchError, match="class"):
        cs.MultiplicativeLR(sgd(), T, lr_lambda=lambda t: 1.0).load_state_dict(torch_cos)
    for kw, field in [(dict(pct_start=0.5), "_schedule_phases"), (dict(div_factor=10.0), "div_factor"),
                      (dict(three_phase=True), "_schedule_phases"), (dict(anneal_strategy="linear"), "_anneal_func_type")]:
        theirs = torch.optim.lr_scheduler.OneCycleLR(sgd(), 0.1, total_steps=T, **kw)
        theirs.step()
        with pytest.raises(cs.ScheduleMismatchError, match=field):
            cs.OneCycleLR(sgd(), T).load_state_dict(theirs.state_dict())
    lam = torch.optim.lr_scheduler.LambdaLR(sgd(), lambda t: 0.9**t)
    for _ in range(5):
        lam.step()
    with pytest.raises(cs.ScheduleMismatchError, match="lr_lambda"):  # same keys: told apart by the saved lr
        cs.MultiplicativeLR(sgd(), T, lr_lambda=lambda t: 0.9**t).load_state_dict(lam.state_dict())
    with pytest.raises(cs.ScheduleMismatchError, match="lr_lambda"):  # another function
        cs.LambdaLR(sgd(), T, lr_lambda=lambda t: 0.8**t).load_state_dict(lam.state_dict())
    poly = torch.optim.lr_scheduler.PolynomialLR(sgd(), total_iters=T, power=2.0)
    with pytest.raises(cs.ScheduleMismatchError, match="end_lr"):  # torch's decays to 0
        cs.PolynomialLR(sgd(), T, power=2.0).load_state_dict(poly.state_dict())
    with pytest.raises(cs.ScheduleMismatchError, match="total_iters"):
        cs.PolynomialLR(sgd(), T + 1, power=2.0, end_lr=0.0).load_state_dict(poly.state_dict())


def test_native_onecycle_max_lrs_are_compared():
    state = cs.OneCycleLR(sgd(), T).state_dict()
    state["max_lrs"] = [5.0]
    s = cs.OneCycleLR(sgd(), T)
    with pytest.raises(cs.ScheduleMismatchError, match="max_lrs"):
        s.load_state_dict(state)
    with pytest.warns(UserWarning, match="max_lrs"):
        s.load_state_dict(state, strict=False)
    assert s.max_lrs == [5.0]
    # the resumed run's own peak (base_lrs == max_lrs / div_factor): adopted as the base lrs are
    run = cs.OneCycleLR(sgd(lr=0.3), T)
    run.step_to(4)
    fresh = cs.OneCycleLR(sgd(lr=0.1), T)
    with pytest.warns(UserWarning, match="base_lrs"):
        fresh.load_state_dict(run.state_dict())
    assert fresh.max_lrs == [0.3] and fresh.get_last_lr() == run.get_last_lr()


# ------------------------------------------------------------------ atomic loads
def test_a_refused_load_changes_nothing():
    s = cs.CosineAnnealingLR(make_optimizer(), 30, eta_min=0.01)
    s.step_to(6)
    before = (s.total_steps, s.eta_min, s.last_epoch, s.base_lrs, lrs(s.optimizer), s.get_last_lr())
    state = build("CosineAnnealingLR").state_dict()
    state["hyperparams"] = {**state["hyperparams"], "eta_min": float("nan")}
    state["last_epoch"] = 3
    with pytest.raises(CheckpointError, match="eta_min"):
        s.load_state_dict(state, strict=False)
    assert (s.total_steps, s.eta_min, s.last_epoch, s.base_lrs, lrs(s.optimizer), s.get_last_lr()) == before
    bad_lr = {**build("CosineAnnealingLR", total=30, eta_min=0.01).state_dict(), "base_lrs": [0.1, -1.0, 0.1, 0.1]}
    with pytest.raises(CheckpointError, match="base_lrs"):
        s.load_state_dict(bad_lr)
    assert (s.total_steps, s.eta_min, s.last_epoch, s.base_lrs, lrs(s.optimizer), s.get_last_lr()) == before


def deep(n):
    value = 0.1
    for _ in range(n):
        value = [value]
    return value


MALFORMED = {  # refused whatever strict says
    "deep hyperparam": lambda st: {**st, "hyperparams": {**st["hyperparams"], "eta_min": deep(100000)}},
    "deep base_lrs": lambda st: {**st, "base_lrs": deep(100000)},
    "huge class": lambda st: {**st, "class": "X" * 10**6},
    "huge base_lrs": lambda st: {**st, "base_lrs": [0.1] * 10**6},
    "huge hyperparam": lambda st: {**st, "hyperparams": {**st["hyperparams"], "eta_min": "y" * 10**6}},
    "many hyperparams": lambda st: {**st, "hyperparams": {f"k{i}": i for i in range(10**5)}},
    "huge last_epoch": lambda st: {**st, "last_epoch": 10**400},
    "str last_epoch": lambda st: {**st, "last_epoch": "7" * 10**5},
    "bool version": lambda st: {**st, "format_version": True},
    "list state": lambda st: [st],
    "hyperparams list": lambda st: {**st, "hyperparams": [1, 2]},
    "non-str keys": lambda st: {**st, "hyperparams": {1: 2}},
    "group_names": lambda st: {**st, "group_names": ["a"] * 3},
    "nan factors": lambda st: {**st, "factors": [float("nan")] * 4},
    "foreign deep": lambda st: {"last_epoch": 3, "base_lrs": deep(100000)},
    "foreign step": lambda st: {"last_epoch": 2.5, "base_lrs": [0.1] * 4},
    "not a state": lambda st: {"x" * 10**5: 1},
}
MISMATCHED = {  # refused by a strict load; strict=False takes the saved step (with a short warning)
    "another class": lambda st: {**st, "class": "EvilLR", "last_epoch": 3},
    "foreign huge keys": lambda st: {"last_epoch": 3, "base_lrs": [0.1] * 4, **{f"k{i}" * 50: 0 for i in range(1000)}},
}


@pytest.mark.parametrize("name", sorted(MALFORMED) + sorted(MISMATCHED))
def test_malformed_states_give_a_short_checkpoint_or_mismatch_error(name):
    s = cs.CosineAnnealingLR(make_optimizer(), T, eta_min=0.01)
    s.step_to(5)
    before = (lrs(s.optimizer), s.last_epoch, s.total_steps)
    bad = (MALFORMED.get(name) or MISMATCHED[name])(s.state_dict())
    for strict in (True, False) if name in MALFORMED else (True,):
        with pytest.raises((CheckpointError, cs.ScheduleMismatchError)) as err:
            s.load_state_dict(bad, strict=strict)
        assert len(str(err.value).encode()) < 1024 and type(err.value) in (CheckpointError, cs.ScheduleMismatchError)
    assert (lrs(s.optimizer), s.last_epoch, s.total_steps) == before
    if name in MISMATCHED:
        with pytest.warns(UserWarning) as caught:
            s.load_state_dict(bad, strict=False)
        assert all(len(str(w.message)) < 1024 for w in caught) and s.last_epoch == 3


def test_a_torch_milestone_counter_with_a_huge_count_is_refused_quickly():
    theirs = torch.optim.lr_scheduler.MultiStepLR(sgd(), [5, 12], 0.5).state_dict()
    theirs["milestones"] = {5: 10**12}
    with pytest.raises(cs.ScheduleMismatchError) as err:
        cs.MultiStepLR(sgd(), T, milestones=[5, 12], gamma=0.5).load_state_dict(theirs)
    assert len(str(err.value)) < 1024


# ------------------------------------------------------------- 6. torch composition
def test_sequential_lr_keeps_working_and_matches_torch():
    opt, topt = sgd(), sgd()
    ours = torch.optim.lr_scheduler.SequentialLR(
        opt, [cs.ExponentialLR(opt, 100, gamma=0.9), cs.StepLR(opt, 100, step_size=2, gamma=0.5)], milestones=[5])
    theirs = torch.optim.lr_scheduler.SequentialLR(
        topt, [torch.optim.lr_scheduler.ExponentialLR(topt, 0.9), torch.optim.lr_scheduler.StepLR(topt, 2, 0.5)],
        milestones=[5])  # fmt: skip
    got, want = [lrs(opt)[0]], [lrs(topt)[0]]
    for t in range(14):
        opt.step(), topt.step()
        if t == 7:
            state = ours.state_dict()
        ours.step(), theirs.step()
        got.append(lrs(opt)[0]), want.append(lrs(topt)[0])
    assert got == pytest.approx(want, rel=1e-12)
    opt2 = sgd()
    again = torch.optim.lr_scheduler.SequentialLR(
        opt2, [cs.ExponentialLR(opt2, 100, gamma=0.9), cs.StepLR(opt2, 100, step_size=2, gamma=0.5)], milestones=[5])
    again.load_state_dict(state)
    again.step()
    assert lrs(opt2)[0] == got[8]


def test_chained_scheduler_is_refused_at_its_first_step_pointing_to_composed_lr():
    opt = sgd(lr=1.0)
    chain = torch.optim.lr_scheduler.ChainedScheduler(
        [cs.ExponentialLR(opt, 100, gamma=0.9), cs.StepLR(opt, 100, step_size=2, gamma=0.5)])
    before = lrs(opt)
    with pytest.raises(TypeError, match="ComposedLR"):
        chain.step()
    assert lrs(opt) == before
    # what torch's own classes give, and the colossal_sched way to get it
    topt = sgd(lr=1.0)
    tchain = torch.optim.lr_scheduler.ChainedScheduler(
        [torch.optim.lr_scheduler.ExponentialLR(topt, 0.9), torch.optim.lr_scheduler.StepLR(topt, 2, 0.5)])
    want = [1.0]
    for _ in range(5):
        topt.step()
        tchain.step()
        want.append(lrs(topt)[0])
    product = cs.LambdaLR(sgd(lr=1.0), 100, lr_lambda=lambda t: 0.9**t * 0.5 ** (t // 2))
    assert product.lr_table(range(6))[:, 0] == pytest.approx(want, rel=1e-12)
    assert want[:3] == pytest.approx([1.0, 0.9, 0.405])


# ----------------------------------------------------------------------- 7. CLI
def test_cli_plot_unwritable_out_is_one_line_status_2(tmp_path):
    for out in ("/nonexistent/dir/x.png", str(tmp_path)):
        res = forked.run(CLI + ["plot", "CosineAnnealingLR", "--total-steps", "10", "--out", out],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert res.stderr.count("\n") == 1 and "--out" in res.stderr


def test_write_refuses_non_finite_or_negative_values_before_writing():
    s = build("OneCycleLR")
    s.step_to(3)
    before = (lrs(s.optimizer), [g["momentum"] for g in s.optimizer.param_groups], s.last_epoch)
    n = len(BASE_LRS)
    for bad_lrs, bad_moms in [([float("nan")] * n, None), ([-0.1] * n, None), ([float("inf")] * n, None),
                              ([0.1] * n, [1.5] * n), ([0.1] * n, [float("nan")] * n)]:
        with pytest.raises(InvalidLRError):
            s.write(4, bad_lrs, bad_moms)
        assert (lrs(s.optimizer), [g["momentum"] for g in s.optimizer.param_groups], s.last_epoch) == before
    with pytest.raises(TypeError, match="step"):
        s.write(4.0, [0.1] * n)


def test_a_negative_factor_after_the_product_reached_zero_still_raises():
    m = cs.MultiplicativeLR(sgd(), 10, lr_lambda=lambda t: 0.0 if t == 1 else (-1.0 if t == 3 else 1.0))
    m.step(), m.step()
    assert lrs(m.optimizer) == [0.0]
    with pytest.raises(InvalidLRError, match="returned -1.0 at step 3"):
        m.step()
    with pytest.raises(InvalidLRError, match="step 3"):
        m.lr_table(range(5))
    z = cs.LambdaLR(sgd(lr=0.0), 10, lr_lambda=lambda t: -1.0 if t == 2 else 1.0)  # base lr 0
    z.step()
    with pytest.raises(InvalidLRError, match="returned -1.0 at step 2"):
        z.step()


def test_onecycle_three_phase_past_total_steps_agrees_on_every_path():
    """Found while speeding up step(): lr_at did not clamp past T where lr_table did (three_phase, linear)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    s = cs.OneCycleLR(opt, 1999, pct_start=0.6055995301393269, anneal_strategy="linear", three_phase=True)
    steps = np.arange(1990, 2010)
    assert [list(r) for r in s.lr_table(steps)] == [s.lr_at(int(t)) for t in steps]
    assert [list(r) for r in s.momentum_table(steps)] == [s.momentum_at(int(t)) for t in steps]


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("adam", [False, True])
def test_onecycle_step_writes_the_tables_lr_and_momentum_bit_for_bit(adam, three_phase):
    """step() computes lr and momentum in one pass and writes both per group in one pass: the tables' bits."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
    groups = [{"params": [p], "lr": 0.1 * (i + 1)} for i, p in enumerate(params)]
    opt = torch.optim.Adam(groups, betas=(0.9, 0.99)) if adam else torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    s = cs.OneCycleLR(opt, 60, pct_start=0.25, three_phase=three_phase, base_momentum=[0.8, 0.85, 0.7])
    lr_table, momentum_table = s.lr_table(range(70)), s.momentum_table(range(70))
    for t in range(70):
        assert lrs(opt) == lr_table[t].tolist()
        assert [g["betas"][0] if adam else g["momentum"] for g in opt.param_groups] == momentum_table[t].tolist()
        assert all(g["betas"][1] == 0.99 for g in opt.param_groups) if adam else True
        s.step()
    off = cs.OneCycleLR(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.5), 60, cycle_momentum=False)
    off.step()
    assert off.optimizer.param_groups[0]["momentum"] == 0.5 and off.momentum_at(1) is None
