"""Issue #12: re-planning a running schedule: continuity, the re-fitted shape, WSD's stable phase absorbing
the change, refusals, state/fingerprint, bit-exact resume (one process, and 2 ranks with the hook and DCP)."""
import json
import math

import numpy as np
import pytest
from conftest import BASE_LRS, make_optimizer
from hypothesis import given, settings
from hypothesis import strategies as st

import colossal_sched as cs

CASES = [
    ("WarmupStableDecayLR", dict(warmup_steps=5, decay_steps=10, min_lr=0.001)),
    ("WarmupStableDecayLR", dict(warmup_steps=5, decay_ratio=0.25, decay_style="cosine", min_lr=0.001)),
    ("WarmupStableDecayLR", dict(decay_steps=12, decay_style="1-sqrt")),
    ("ComposedLR", dict(phases=[{"type": "warmup"}, {"type": "cosine", "end_lr": 0.002}], boundaries=[5])),
    ("ComposedLR", dict(phases=[{"type": "constant"}, {"type": "polynomial", "end_lr": 0.001, "power": 2.0}], boundaries=[10])),
    ("ComposedLR", dict(phases=[{"type": "milestones", "milestones": [10, 20, 30], "gamma": 0.5}])),
    ("ComposedLR", dict(phases=[{"type": "exponential", "gamma": 0.9}])),
    ("ComposedLR", dict(phases=[{"type": "steps", "step_size": 7, "gamma": 0.5}])),
    ("ConstantWarmupLR", dict(warmup_steps=5)),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
T = 40


def build(name, kw, total=T):
    return cs.SCHEDULERS[name](make_optimizer(), total, **kw)


def curve(s, n=130):
    return s.lr_table(range(n))


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
@pytest.mark.parametrize("at,new_total", [(12, 80), (20, 30), (T + 5, 70)])
def test_the_past_is_unchanged_the_end_value_is_kept_at_the_new_end(name, kw, at, new_total):
    s = build(name, kw)
    before = curve(s)
    s.step_to(at)
    s.replan(new_total)
    after = curve(s)
    assert (after[: at + 1] == before[: at + 1]).all()  # bit for bit up to at_step: continuous there
    assert s.total_steps == new_total and s.hyperparameters()["total_steps"] == T
    np.testing.assert_allclose(after[new_total:], before[T:T + 1].repeat(130 - new_total, 0), rtol=1e-9)
    assert [s.lr_at(t) for t in range(130)] == after.tolist()  # lr_at and lr_table still one definition
    assert s.get_last_lr() == before[at].tolist()


def test_a_continuous_decay_is_re_fitted_from_the_current_lr():
    s = cs.ComposedLR(make_optimizer(), 100, phases=[{"type": "warmup"}, {"type": "cosine", "end_lr": 0.01}], boundaries=[10])
    s.step_to(40)
    c = s.get_last_lr()
    s.replan(240)
    for k in (1, 50, 123, 200):
        want = [0.01 + (ci - 0.01) * (1 + math.cos(math.pi * k / 200)) / 2 for ci in c]
        assert s.lr_at(40 + k) == pytest.approx(want, rel=1e-12)


def test_wsd_stable_phase_absorbs_the_change_and_the_decay_keeps_its_length_or_ratio():
    one = make_optimizer(1, lrs=(1.0,))
    s = cs.WarmupStableDecayLR(one, 100, warmup_steps=10, decay_steps=20, min_lr=0.0)
    s.step_to(30)
    s.replan(200)
    assert s.lr_at(179) == [1.0] and s.lr_at(180) == [1.0] and s.lr_at(190) == [0.5] and s.lr_at(200) == [0.0]
    r = cs.WarmupStableDecayLR(make_optimizer(1, lrs=(1.0,)), 110, warmup_steps=10, decay_ratio=0.2)
    r.replan(210, at_step=50)  # D' = int(0.2 * 200) = 40
    assert r.lr_at(170) == [1.0] and r.lr_at(190) == [0.5] and r.lr_at(210) == [0.0]
    shrink = cs.WarmupStableDecayLR(make_optimizer(1, lrs=(1.0,)), 100, warmup_steps=10, decay_steps=20)
    shrink.replan(60, at_step=50)  # the decay no longer fits after step 50: it starts there, over the 10 steps left
    assert shrink.lr_at(50) == [1.0] and shrink.lr_at(55) == [0.5] and shrink.lr_at(60) == [0.0]
    decaying = cs.WarmupStableDecayLR(make_optimizer(1, lrs=(1.0,)), 100, warmup_steps=10, decay_steps=20)
    decaying.replan(130, at_step=90)  # inside the decay: re-fitted from lr 0.5 over the 40 steps left
    assert decaying.lr_at(90) == [0.5] and decaying.lr_at(110) == [0.25] and decaying.lr_at(130) == [0.0]
    labels = [label for label, _ in s.phase_boundaries()]
    assert labels == ["warmup end", "re-plan", "decay start", "end"]


def test_length_free_shapes_continue_the_same_curve_to_the_new_end():
    for s in (cs.InverseSqrtLR(make_optimizer(), 40, warmup_steps=4),
              cs.CosineAnnealingWarmRestartsLR(make_optimizer(), 40, first_cycle_steps=7, cycle_mult=1.5, cycle_decay=0.9)):
        longer = type(s)(make_optimizer(), 90, **{k: v for k, v in s.hyperparameters().items() if k != "total_steps"})
        s.replan(90, at_step=15)
        assert (curve(s) == curve(longer)).all()


def test_staircases_move_their_decays_proportionally():
    s = cs.ComposedLR(make_optimizer(1, lrs=(1.0,)), 40, phases=[{"type": "milestones", "milestones": [10, 20, 30], "gamma": 0.5}])
    s.replan(70, at_step=10)  # 30 remaining steps become 60: the decays at 20 and 30 move to 30 and 50
    got = [s.lr_at(t)[0] for t in (10, 29, 30, 49, 50, 70)]
    assert got == [0.5, 0.5, 0.25, 0.25, 0.125, 0.125]


def test_default_at_step_is_the_current_step_and_replans_compose():
    s = build(*CASES[0])
    for _ in range(12):
        s.step()
    s.replan(80)
    s.step_to(50)
    s.replan(60)
    assert s.replans == [(12, 80), (50, 60)] and s.total_steps == 60
    assert s.lr_at(60) == pytest.approx([0.001] * 4, rel=1e-12)


@pytest.mark.parametrize("total,at,needle", [
    (30, 30, r"total_steps must be an int > at_step=30"),
    (10, 20, r"total_steps must be an int > at_step=20"),
    (80, 3, r"at_step=3 is inside the warmup \(steps 0\.\.4\): re-plan at a step >= 5"),
])
def test_refused_re_plans_change_nothing(total, at, needle):
    s = build(*CASES[0])
    s.step_to(25)
    state = s.state_dict()
    with pytest.raises(cs.ReplanError, match=needle):
        s.replan(total, at_step=at)
    assert s.state_dict() == state and s.replans == []
    with pytest.raises((ValueError, TypeError), match="at_step"):
        s.replan(80, at_step=-1)
    with pytest.raises((ValueError, TypeError), match="total_steps"):
        s.replan(80.5)


@pytest.mark.parametrize("make", [
    lambda o: cs.LambdaLR(o, 20, lr_lambda=lambda t: 0.9**t), lambda o: cs.MultiplicativeLR(o, 20, lr_lambda=lambda t: 0.9),
    lambda o: cs.OneCycleLR(o, 20),
], ids=["LambdaLR", "MultiplicativeLR", "OneCycleLR"])
def test_schedules_that_cannot_be_re_fitted_refuse_clearly(make):
    s = make(make_optimizer())
    s.step_to(5)
    lrs = s.get_last_lr()
    with pytest.raises(cs.ReplanError, match=f"{type(s).__name__} cannot be re-planned"):
        s.replan(40)
    assert s.get_last_lr() == lrs and s.total_steps == 20


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_re_plans_are_state_fingerprint_and_resume_bit_for_bit(name, kw):
    s = build(name, kw)
    plain = build(name, kw)
    s.step_to(15)
    s.replan(90)
    assert s.state_dict()["replans"] == [[15, 90]] and s.schedule_spec()["replans"] == [[15, 90]]
    assert s.fingerprint() != plain.fingerprint()
    reference = curve(s)
    for k in (15, 16, 40, 89, 90, 100):
        s.step_to(k)
        state = json.loads(json.dumps(s.state_dict()))
        resumed = build(name, kw)  # a fresh run, built with the constructor's arguments only
        resumed.load_state_dict(state)
        assert resumed.fingerprint() == s.fingerprint() and resumed.total_steps == 90
        for t in range(k, 120):
            assert resumed.get_last_lr() == reference[t].tolist(), (k, t)
            resumed.step()
    plain.step_to(15)
    s.load_state_dict(plain.state_dict())  # the checkpoint is the truth: its (absent) re-plans replace this run's
    assert s.replans == [] and s.total_steps == T and (curve(s) == curve(plain)).all()


@settings(max_examples=80, deadline=None, derandomize=True)  # the same examples every run
@given(st.sampled_from(CASES), st.integers(0, 60), st.integers(1, 100), st.integers(0, 60), st.integers(1, 100))
def test_random_re_plans_keep_the_past_and_resume_exactly(case, at1, extra1, at2, extra2):
    name, kw = case
    s = build(name, kw)
    w = dict(s.phase_boundaries()).get("warmup end", 0)
    at1, at2 = max(at1, w), max(at2, w)
    history = curve(s)
    for at, extra in ((at1, extra1), (at2, extra2)):
        s.replan(at + extra, at_step=at)
        now = curve(s)
        assert (now[: at + 1] == history[: at + 1]).all()
        assert np.isfinite(now).all() and (now >= 0).all() and (now <= max(BASE_LRS) * (1 + 1e-12)).all()
        history = now
    again = build(name, kw)
    again.load_state_dict(json.loads(json.dumps(s.state_dict())))
    assert (curve(again) == history).all()


MANY = CASES + [
    ("CosineAnnealingWarmRestartsLR", dict(first_cycle_steps=9, cycle_mult=1.5, warmup_steps=2, eta_min=0.001)),
    ("InverseSqrtLR", dict(warmup_steps=4, min_lr=0.001)),
    ("FlatAnnealingWarmupLR", dict(warmup_steps=3, pct_start=0.5)),
    ("MultiStepLR", dict(milestones=[5, 12, 30], gamma=0.5)),
]


@settings(max_examples=120, deadline=None, derandomize=True)  # the same examples every run
@given(st.sampled_from(MANY), st.lists(st.tuples(st.integers(0, 90), st.integers(1, 120)), min_size=1, max_size=4))
def test_any_sequence_of_re_plans_is_one_curve_that_lr_at_and_lr_table_agree_on(case, plans):
    """Re-plans in any order: a re-plan at or before an earlier one's step supersedes it, so the result is the
    constructed plan with only the re-plans in effect; lr_at, lr_table and a resume give the same bits."""
    name, kw = case
    s = build(name, kw)
    w = dict(s.phase_boundaries()).get("warmup end", 0)
    in_effect = []
    for at, extra in plans:
        at = max(at, w)
        before = curve(s)
        s.replan(at + extra, at_step=at)
        in_effect = [(a, t) for a, t in in_effect if a < at] + [(at, at + extra)]
        assert s.replans == in_effect
        now = curve(s)
        assert (now[: at + 1] == before[: at + 1]).all(), "the past is unchanged"
    n = s.total_steps + 5
    table = s.lr_table(range(n))
    scalar = np.array([s.lr_at(t) for t in range(n)])
    assert (table == scalar).all(), "lr_table and lr_at agree bit for bit"
    fresh = build(name, kw)
    for at, total in in_effect:
        fresh.replan(total, at_step=at)
    assert (fresh.lr_table(range(n)) == table).all()
    again = build(name, kw)
    again.load_state_dict(json.loads(json.dumps(s.state_dict())))
    assert (again.lr_table(range(n)) == table).all()


# ------------------------------------------------------------ two real ranks
@pytest.mark.multiprocess
@pytest.mark.timeout(240)
def test_two_ranks_re_plan_through_the_hook_save_dcp_and_resume_bit_for_bit(tmp_path):
    from distributed import run

    import replan_workers as W

    ckpt = W.ckpt_path(tmp_path)
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    reference = cs.WarmupStableDecayLR(make_optimizer(2, lrs=(0.1, 0.2)), 40, **W.WSD)
    reference.replan(60, at_step=12)
    expected = reference.lr_table(range(60)).tolist()
    trained = run(2, W.replan_save_resume, ckpt, "train", 12, 60, 20, tmp_path=tmp_path / "a", timeout=200)
    for res in trained:
        assert res["replans"] == [[12, 60]] and res["total_steps"] == 60
        assert [res["seen"][str(n)] for n in range(20)] == expected[:20]
    assert trained[0]["fingerprint"] == trained[1]["fingerprint"] == reference.fingerprint()
    resumed = run(2, W.replan_save_resume, ckpt, "resume", 12, 60, 20, tmp_path=tmp_path / "b", timeout=200)
    for res in resumed:
        assert res["start"] == 20 and res["replans"] == [[12, 60]]
        assert [res["seen"][str(n)] for n in range(20, 60)] == expected[20:60]


@pytest.mark.multiprocess
@pytest.mark.timeout(240)
def test_a_rank_that_re_planned_alone_is_a_schedule_mismatch_on_every_rank(tmp_path):
    from distributed import run

    import replan_workers as W

    results = run(2, W.replan_alone, 12, 60, tmp_path=tmp_path, timeout=200)
    for res in results:
        assert res["error"] == "ScheduleMismatchError", res


@pytest.mark.multiprocess
@pytest.mark.timeout(500)
def test_train_py_replan_in_the_loop_and_on_a_resume_past_its_step(tmp_path):
    from torchrun import lrs_by_step, read_log, train

    common = ["--dp", 2, "--total-steps", 40, "--warmup-steps", 4, "--scheduler", "WarmupStableDecayLR",
              "--scheduler-arg", "decay_steps=10", "--log-every", 0, "--lr", 0.01]
    reference = cs.WarmupStableDecayLR(make_optimizer(2, lrs=(0.01, 0.01)), 40, warmup_steps=4, decay_steps=10)
    reference.replan(60, at_step=12)

    def check(log, steps):
        by_step = lrs_by_step(read_log(log))
        assert sorted(by_step) == list(steps)
        for step, per_rank in by_step.items():
            assert sorted(per_rank) == [0, 1] and all(lr == reference.lr_at(step) for lr in per_rank.values()), step

    proc = train(2, *common, "--replan", "12:60", "--stop-at", 25, "--lr-log", tmp_path / "a.jsonl")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    check(tmp_path / "a.jsonl", range(25))
    proc = train(2, *common, "--save-every", 10, "--stop-at", 20, "--ckpt-dir", tmp_path / "ckpt")  # saved before re-planning
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    proc = train(2, *common, "--replan", "12:60", "--ckpt-dir", tmp_path / "ckpt", "--lr-log", tmp_path / "b.jsonl")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    check(tmp_path / "b.jsonl", range(20, 60))
    bad = train(2, *common, "--replan", "2:60")
    assert bad.returncode != 0 and "--replan 2:60: at_step=2 is inside the warmup" in bad.stderr  # torchrun exits 1


# ------------------------------------------- ColossalAI's closed forms, re-expressed on phases
CLOSED_FORMS = [
    ("CosineAnnealingLR", dict(eta_min=0.01)), ("CosineAnnealingWarmupLR", dict(warmup_steps=5, eta_min=0.01)),
    ("CosineAnnealingWarmupLR", dict()), ("FlatAnnealingLR", dict(pct_start=0.5, eta_min=0.02)),
    ("FlatAnnealingLR", dict(pct_start=1.0)), ("FlatAnnealingWarmupLR", dict(warmup_steps=4, pct_start=0.5, eta_min=0.01)),
    ("LinearWarmupLR", dict(warmup_steps=5)), ("LinearWarmupLR", dict()),
    ("MultiStepLR", dict(milestones=[5, 12], gamma=0.5)), ("MultiStepWarmupLR", dict(warmup_steps=4, milestones=[5, 12], gamma=0.5)),
    ("MultiStepWarmupLR", dict(warmup_steps=20, milestones=[20], gamma=0.5)),
    ("PolynomialLR", dict(power=2.0, end_lr=0.001)), ("PolynomialWarmupLR", dict(warmup_steps=5, power=1.7)),
    ("StepLR", dict(step_size=3, gamma=0.5)), ("ExponentialLR", dict(gamma=0.9)),
]


@pytest.mark.parametrize("name,kw", CLOSED_FORMS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CLOSED_FORMS)])
def test_colossalai_closed_forms_on_phases_keep_their_former_bits_and_re_plan(name, kw):
    from reference import closed_form

    s = cs.SCHEDULERS[name](make_optimizer(), 20, **kw)
    assert isinstance(s, cs.PhasedLR) and s.colossalai
    for t in range(36):
        assert s.lr_at(t) == closed_form(name, kw, list(BASE_LRS), t, 20), t
    w = kw.get("warmup_steps", 0)
    before = curve(s)
    s.replan(50, at_step=max(w, 8))
    after = curve(s)
    assert (after[: max(w, 8) + 1] == before[: max(w, 8) + 1]).all()
    np.testing.assert_allclose(after[50], before[20], rtol=1e-9)


def test_one_declaration_registers_and_describes_every_scheduler():
    import inspect

    import colossal_sched.base as B

    assert dict(cs.SCHEDULERS) == {n: c for n, c in B.REGISTRY.items()}
    assert list(cs.COLOSSALAI_SCHEDULERS) == [n for n in cs.SCHEDULERS if cs.SCHEDULERS[n].colossalai]
    assert len(cs.COLOSSALAI_SCHEDULERS) == 14 and not cs.WarmupStableDecayLR.colossalai
    for name, cls in cs.SCHEDULERS.items():
        declared = list(inspect.signature(cls._configure).parameters)[1:]
        assert set(cls.hyperparams) <= set(declared), name  # _configure declares each (name, default, check)
    assert "PhasedLR" not in cs.SCHEDULERS and "_LambdaBase" not in cs.SCHEDULERS

    class UserLR(cs.CosineAnnealingLR):  # a user's subclass is not registered
        pass

    assert "UserLR" not in cs.SCHEDULERS


def test_inspect_shows_the_re_plans_phases_and_steps_left(tmp_path):
    import contextlib
    import io

    import torch

    from colossal_sched.cli import main

    s = cs.WarmupStableDecayLR(make_optimizer(), 100, warmup_steps=10, decay_steps=20)
    s.step_to(30)
    s.replan(200)
    s.step_to(40)
    torch.save(s.state_dict(), tmp_path / "lr.pt")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["inspect", str(tmp_path / "lr.pt")]) == 0
    text = out.getvalue()
    assert "re-planned at step 30 to end at 200" in text
    assert "phases: warmup end 10, re-plan 30, decay start 180, end 200" in text
    assert "steps remaining: 160 of 200" in text
