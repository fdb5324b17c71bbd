"""Issue 20, part 1: ReduceLROnPlateauLR and the 'plateau' phase, torch's decisions bit for bit, the metric agreed on
every rank inside the one sync, its state in the checkpoint (worlds 1, 2 and 4)."""
import json
import math
import random
import warnings

import pytest
import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

import colossal_sched as cs
import plateau_workers as W
from colossal_sched.errors import CheckpointError, MetricError
from distributed import run
from hooks import LRSchedulerHook


def _opt(lrs=(0.5, 0.5)):
    return torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs], lr=0.1)


def _lrs(opt):
    return [g["lr"] for g in opt.param_groups]


# ------------------------------------------------------------ torch's semantics
# torch's own cases (test/optim/test_lrscheduler.py, test_reduce_lr_on_plateau1..8): (kwargs, metrics, targets)
TORCH_CASES = {
    "1": (dict(threshold_mode="abs", mode="min", threshold=0.01, patience=5, cooldown=5),
          [10 - i * 0.0167 for i in range(10)], [[0.5] * 10]),
    "2": (dict(patience=5, cooldown=0, threshold_mode="abs", mode="min", threshold=0.1),
          [10 - i * 0.0165 for i in range(22)], [[0.5] * 6 + [0.05] * 7 + [0.005] * 7 + [0.0005] * 2]),
    "3": (dict(mode="max", patience=5, cooldown=5, threshold_mode="abs"),
          [-0.8] * 2 + [-0.234] * 20, [[0.5] * (2 + 6) + [0.05] * (5 + 6) + [0.005] * 4]),
    "4": (dict(mode="max", patience=3, threshold_mode="rel", threshold=0.1),
          [1.5 * (1.025**i) for i in range(20)], [[0.5] * 20]),
    "5": (dict(mode="max", threshold_mode="rel", threshold=0.1, patience=5, cooldown=5),
          [1.5 * (1.005**i) for i in range(20)], [[0.5] * 6 + [0.05] * (5 + 6) + [0.005] * 4]),
    "6": (dict(mode="min", threshold_mode="rel", threshold=0.1), [1.5 * (0.85**i) for i in range(20)], [[0.5] * 20]),
    "7": (dict(mode="min", threshold_mode="rel", threshold=0.1, patience=5, cooldown=5),
          [1] * 7 + [0.6] + [0.5] * 12, [[0.5] * 6 + [0.05] * (5 + 6) + [0.005] * 4]),
    "8": (dict(mode="max", threshold_mode="rel", min_lr=[0.4, 0.3], threshold=0.1, patience=5, cooldown=5),
          [1.5 * (1.005**i) for i in range(20)], [[0.5] * 6 + [0.4] * 14, [0.5] * 6 + [0.3] * 14]),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_torch_own_cases_give_torch_targets(case):
    kwargs, metrics, targets = TORCH_CASES[case]
    opt = _opt()
    s = cs.ReduceLROnPlateauLR(opt, **kwargs)  # torch's keywords; no total_steps: no end
    for epoch, metric in enumerate(metrics):
        opt.step()
        s.step(metric)
        for g, target in zip(opt.param_groups, targets):
            assert g["lr"] == pytest.approx(target[epoch], abs=1e-5), f"case {case}, epoch {epoch}"


def test_the_same_metrics_give_torch_lrs_and_decisions_bit_for_bit():
    """500 pinned random configurations, 40 metrics each, against torch's ReduceLROnPlateau stepped alongside."""
    for seed in range(500):
        r = random.Random(seed)
        kwargs = dict(mode=r.choice(["min", "max"]), factor=r.choice([0.0, 0.1, 0.3, 0.5, 0.9]), patience=r.randint(0, 4),
                      threshold=r.choice([0.0, 1e-4, 0.1, 1.0]), threshold_mode=r.choice(["rel", "abs"]),
                      cooldown=r.randint(0, 3), min_lr=r.choice([0.0, 1e-3, [1e-3, 0.05]]), eps=r.choice([0.0, 1e-8, 1e-3]))
        ours, theirs = _opt((1.0, 0.7)), _opt((1.0, 0.7))
        s, t = cs.ReduceLROnPlateauLR(ours, 10**6, **kwargs), ReduceLROnPlateau(theirs, **kwargs)
        for i in range(40):
            metric = r.choice([r.random(), 1.0, 0.5, -1.0, float(r.randint(-3, 3))])
            s.step(metric)
            t.step(metric)
            assert _lrs(ours) == _lrs(theirs), (seed, i, kwargs)
            p = s.plateau
            assert (p.best, p.num_bad_epochs, p.cooldown_counter) == (t.best, t.num_bad_epochs, t.cooldown_counter), (seed, i)
        assert s.plateau.metrics == 40 and s.last_epoch == t.last_epoch == 40


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tensor_lrs_are_reduced_from_the_value_they_hold_as_torch_s(dtype):
    """torch reduces ``float(group["lr"])``: a float32 lr from its float32 value; so do we, bit for bit."""
    for seed in range(60):
        r = random.Random(seed)
        kwargs = dict(factor=r.choice([0.1, 0.3, 0.7]), patience=r.randint(0, 2), min_lr=r.choice([0.0, 1e-4]),
                      eps=r.choice([0.0, 1e-8, 1e-5]), cooldown=r.randint(0, 1))
        ours, theirs = [torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=torch.tensor(0.1, dtype=dtype))
                        for _ in range(2)]
        s, t = cs.ReduceLROnPlateauLR(ours, **kwargs), ReduceLROnPlateau(theirs, **kwargs)
        for i in range(30):
            metric = r.choice([1.0, 2.0, 0.5 ** i])
            s.step(metric)
            t.step(metric)
            assert ours.param_groups[0]["lr"].item() == theirs.param_groups[0]["lr"].item(), (seed, i, kwargs)


def test_step_with_a_bad_metric_takes_no_step():
    opt = _opt()
    s = cs.ReduceLROnPlateauLR(opt, 100, warmup_steps=4)
    s.step(1.0)
    before, lrs = json.dumps(s.state_dict()), _lrs(opt)
    for bad in (float("nan"), 10**400, "1.0"):
        with pytest.raises(ValueError, match="metrics must be a finite float"):
            s.step(bad)
        assert json.dumps(s.state_dict()) == before and _lrs(opt) == lrs and s.last_epoch == 1


def test_a_replan_before_any_reduction_keeps_a_scaled_plateau_s_level_and_it_still_listens():
    def sched():
        return cs.ComposedLR(_opt((0.1,)), 100, [{"type": "warmup"}, {"type": "cosine", "end_lr": 0.05},
                                               {"type": "plateau", "patience": 0, "factor": 0.5, "scale": 0.5}],
                             boundaries=[5, 10])
    for at in (7, 20):  # inside the cosine, then again inside the plateau; and once inside the plateau only
        s = sched()
        _run(s, [None] * (at + 1))
        s.replan(200)
        if at == 7:
            _run(s, [None] * 13, start=at + 1)
            s.replan(300)
        assert s.get_last_lr() == [0.05] and s.lr_at(250) == [0.05], at
        assert cs.ComposedLR.from_state(s.state_dict()).lr_at(250) == [0.05]
        s.observe(1.0)
        s.observe(1.0)  # patience 0: the second equal metric halves the level, after the re-plans too
        assert s.get_last_lr() == [0.025] and s.lr_at(199) == [0.025], at


def test_a_tensor_lr_stays_a_tensor_written_in_place():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=torch.tensor(0.5))
    lr = opt.param_groups[0]["lr"]
    s = cs.ReduceLROnPlateauLR(opt, 100, patience=0)
    s.step(1.0)
    s.step(2.0)
    assert opt.param_groups[0]["lr"] is lr and lr.item() == pytest.approx(0.05)


# ------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs,words", [
    (dict(mode="lowest"), "mode must be one of ['min', 'max']"),
    (dict(factor=1.0), "factor must be a finite float in [0.0, 1.0)"),
    (dict(factor=1.5), "factor must be a finite float in [0.0, 1.0)"),
    (dict(patience=-1), "patience must be an int"),
    (dict(threshold_mode="relative"), "threshold_mode must be one of ['rel', 'abs']"),
    (dict(cooldown=-2), "cooldown must be an int"),
    (dict(min_lr=[0.1]), "min_lr must be a float or a list of 2 floats"),
    (dict(min_lr=-0.1), "min_lr must be a finite float"),
    (dict(warmup_steps=100), "warmup_steps"),
], ids=lambda v: str(v)[:30])
def test_bad_hyperparameters_are_refused_naming_the_argument(kwargs, words):
    opt = _opt()
    with pytest.raises(ValueError) as e:
        cs.ReduceLROnPlateauLR(opt, 100, **kwargs)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert _lrs(opt) == [0.5, 0.5] and "initial_lr" not in opt.param_groups[0]


@pytest.mark.parametrize("metric", [float("nan"), math.inf, -math.inf, "0.3", None, torch.ones(2)], ids=repr)
def test_a_metric_that_is_not_a_finite_number_is_refused_and_changes_nothing(metric):
    opt = _opt()
    s = cs.ReduceLROnPlateauLR(opt, 100, patience=0)
    s.step(1.0)
    s.step(2.0)
    before, lrs = json.dumps(s.state_dict()), _lrs(opt)
    with pytest.raises((ValueError, TypeError)) as e:
        s.observe(metric)
    assert "metric must be" in str(e.value) or "metric" in str(e.value)
    assert json.dumps(s.state_dict()) == before and _lrs(opt) == lrs


def test_a_schedule_without_a_plateau_does_not_listen():
    s = cs.CosineAnnealingWarmupLR(_opt(), 100, 10)
    with pytest.raises(TypeError, match="does not listen to metrics"):
        s.observe(1.0)
    hook = LRSchedulerHook(s)
    hook.step(0)
    with pytest.raises(MetricError, match="does not listen to metrics"):
        hook.step(1, metric=0.5)
    assert s.last_epoch == 0


# ------------------------------------------------------------ warmup, composed
def test_after_a_warmup_metrics_are_counted_not_judged_and_the_warmup_is_ColossalAI_s():
    opt = _opt((0.4, 0.8))
    s = cs.ReduceLROnPlateauLR(opt, 100, warmup_steps=4, patience=0, factor=0.5)
    seen = []
    for n in range(1, 9):
        s.step(5.0 - n * 0.01 if n < 3 else 9.0)  # in the warmup: better and worse values, none judged
        seen.append(_lrs(opt))
    assert seen[:3] == [[(n + 1) / 4 * b for b in (0.4, 0.8)] for n in range(1, 4)]
    assert s.plateau.metrics == 8
    # step 4 judges its metric first (best 9.0), steps 5..8 are worse: patience 0 halves the level each time
    assert seen[3:] == [[0.4, 0.8], [0.2, 0.4], [0.1, 0.2], [0.05, 0.1], [0.025, 0.05]]
    assert s.lr_table([0, 3, 4, 50]).tolist() == [[0.1, 0.2], [0.4, 0.8], [0.025, 0.05], [0.025, 0.05]]


def test_a_composed_schedule_may_end_in_a_plateau_and_nowhere_else():
    opt = _opt((1.0,))
    s = cs.ComposedLR(opt, 100, [{"type": "warmup"}, {"type": "cosine", "end_lr": 0.5},
                                 {"type": "plateau", "patience": 0, "factor": 0.5, "scale": 0.5}], boundaries=[2, 6])
    for n in range(8):
        s.step_to(n)
        s.observe(1.0)
    assert s.lr_at(1) == [1.0] and s.lr_at(5) == pytest.approx([0.5 + 0.5 * (1 + math.cos(math.pi * 3 / 4)) / 2])
    assert _lrs(opt) == [0.25]  # scale 0.5; step 6 judges the first metric (the best), step 7 halves it
    for spec, bounds in [([{"type": "plateau"}, {"type": "constant"}], [3]),
                         ([{"type": "product", "factors": [{"type": "plateau"}]}], [])]:
        with pytest.raises(ValueError, match="a 'plateau' phase must be the last phase"):
            cs.ComposedLR(_opt(), 10, spec, boundaries=bounds)


# ------------------------------------------------------------- state, identity
def _run(s, metrics, start=0):
    seen = []
    for n, m in enumerate(metrics, start):
        s.step_to(n)
        if m is not None:
            s.observe(m)
        seen.append(s.get_last_lr())
    return seen


METRICS = [None, 3.0, None, 2.0, 2.0, 2.5, 2.1, None, 2.2, 2.3, 1.0, 1.2, 1.3, 1.1, 1.4, 1.5, None, 1.6]


def test_a_resume_from_the_state_continues_the_decisions_exactly():
    whole = cs.ReduceLROnPlateauLR(_opt(), 10**4, warmup_steps=2, patience=1, cooldown=1, factor=0.5)
    expected = _run(whole, METRICS)
    first = cs.ReduceLROnPlateauLR(_opt(), 10**4, warmup_steps=2, patience=1, cooldown=1, factor=0.5)
    _run(first, METRICS[:9])
    state = json.loads(json.dumps(first.state_dict()))  # plain JSON: no pickle
    assert set(state["plateau"]) == {"best", "num_bad_epochs", "cooldown_counter", "levels", "metrics"}
    again = cs.ReduceLROnPlateauLR(_opt(), 10**4, warmup_steps=2, patience=1, cooldown=1, factor=0.5)
    again.load_state_dict(state)
    assert again.plateau.state_dict() == first.plateau.state_dict() and again.get_last_lr() == expected[8]
    assert _run(again, METRICS[9:], start=9) == expected[9:]
    rebuilt = cs.ReduceLROnPlateauLR.from_state(state)
    assert _run(rebuilt, METRICS[9:], start=9) == expected[9:]


@pytest.mark.parametrize("field,value", [("best", "low"), ("num_bad_epochs", -1), ("levels", [0.1]), ("levels", [-1.0, 0.1]),
                                         ("metrics", 1.5), ("cooldown_counter", None)])
def test_a_corrupt_plateau_state_is_refused_and_changes_nothing(field, value):
    s = cs.ReduceLROnPlateauLR(_opt(), 100, patience=0)
    _run(s, [1.0, 2.0, 3.0])
    state = s.state_dict()
    other = cs.ReduceLROnPlateauLR(_opt(), 100, patience=0)
    _run(other, [5.0])
    before = json.dumps(other.state_dict())
    state["plateau"][field] = value
    with pytest.raises(CheckpointError, match="plateau"):
        other.load_state_dict(state)
    assert json.dumps(other.state_dict()) == before
    del state["plateau"]
    with pytest.raises(CheckpointError, match="plateau"):
        other.load_state_dict(state)
    assert json.dumps(other.state_dict()) == before


def test_the_fingerprint_covers_every_hyperparameter():
    base = dict(warmup_steps=2, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel", cooldown=0,
                min_lr=0.0, eps=1e-8)
    other = dict(warmup_steps=3, mode="max", factor=0.2, patience=3, threshold=1e-3, threshold_mode="abs", cooldown=2,
                 min_lr=[0.01, 0.02], eps=1e-6)
    ref = cs.ReduceLROnPlateauLR(_opt(), 100, **base).fingerprint()
    for name, value in other.items():
        assert cs.ReduceLROnPlateauLR(_opt(), 100, **{**base, name: value}).fingerprint() != ref, name


def test_a_replan_moves_the_end_and_keeps_the_level():
    s = cs.ReduceLROnPlateauLR(_opt(), 100, patience=0)
    _run(s, [1.0, 2.0, 3.0])
    level = s.get_last_lr()
    assert level == [0.5 * 0.1 * 0.1] * 2
    s.replan(500)
    assert s.total_steps == 500 and s.get_last_lr() == level and s.lr_at(400) == level


def test_a_resume_keeping_the_current_schedule_keeps_what_the_metrics_decided():
    from colossal_sched.checkpoint import restore

    first = LRSchedulerHook(cs.ReduceLROnPlateauLR(_opt(), 100, warmup_steps=2, patience=1, factor=0.5))
    for n in range(10):
        first.step(n, metric=1.0)
    saved, level = first.state_dict(), first.lr_scheduler.get_last_lr()
    assert level == [0.0625, 0.0625]  # halved at steps 4, 6 and 8
    for how in ("use_current", cs.ResumeChoice(checkpoint=["step"], current=["patience"])):
        hook = LRSchedulerHook(cs.ReduceLROnPlateauLR(_opt(), 100, warmup_steps=2, patience=3, factor=0.5))
        restore(hook, saved, how, logger=lambda _: None)
        assert hook.lr_scheduler.plateau.state_dict() == first.lr_scheduler.plateau.state_dict(), how
        assert hook.lr_scheduler.get_last_lr() == level and hook.lr_scheduler.patience == 3, how


def test_a_plateau_cannot_be_a_companion_schedule():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3, weight_decay=0.1)
    wd = cs.ReduceLROnPlateauLR.for_key("weight_decay", opt, 100)
    with pytest.raises(ValueError, match="'weight_decay' is a plateau, which listens to metrics"):
        cs.CosineAnnealingLR(opt, 100).add_schedules(wd)


# -------------------------------------------------------------- hook, world 1
def test_world1_hook_observes_and_refuses_or_skips_a_nonfinite_metric():
    opt = _opt()
    hook = LRSchedulerHook(cs.ReduceLROnPlateauLR(opt, 100, patience=0))
    hook.step(0, metric=1.0)
    hook.step(1, metric=2.0)
    assert _lrs(opt) == [0.05, 0.05]
    before = hook.lr_scheduler.plateau.state_dict()
    with pytest.raises(MetricError, match="metric must be a finite float .* got nan: refused"):
        hook.step(2, metric=float("nan"))
    assert hook.lr_scheduler.plateau.state_dict() == before and hook.lr_scheduler.last_epoch == 1
    skipping = LRSchedulerHook(cs.ReduceLROnPlateauLR(_opt(), 100, patience=0), nonfinite_metric="skip")
    skipping.step(0, metric=1.0)
    with pytest.warns(UserWarning, match="not finite .*: every rank skips this observation"):
        skipping.step(1, metric=float("inf"))
    assert skipping.lr_scheduler.plateau.metrics == 1
    with pytest.raises(ValueError, match="metric_op must be one of"):
        LRSchedulerHook(cs.ReduceLROnPlateauLR(_opt(), 100), metric_op="median")
    with pytest.raises(ValueError, match="nonfinite_metric must be one of"):
        LRSchedulerHook(cs.ReduceLROnPlateauLR(_opt(), 100), nonfinite_metric="ignore")


def test_show_and_plot_say_the_curve_depends_on_metrics(tmp_path, capsys):
    from colossal_sched.cli import main

    assert main(["plot", "ReduceLROnPlateauLR", "--total-steps", "40", "--param", "warmup_steps=8"]) == 0
    out = capsys.readouterr().out
    assert "depends on the metrics" in out
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"lr_scheduler": {"type": "ReduceLROnPlateauLR", "total_steps": 40, "warmup_steps": 8}}))
    assert main(["show", str(config)]) == 0
    assert "depends on the metrics" in capsys.readouterr().out


def test_the_sync_reduces_the_source_dp_group_s_metrics_by_each_op():
    """agreed_metric on a real sync table (int64 rows as the collective delivers them): the source's dp group only."""
    import numpy as np

    from colossal_sched.sync_protocol import _HAS_METRIC, _HEADER, _METRIC, agreed_metric

    metrics = [0.1, 0.7, 0.2, 0.9]  # ranks 0..3; dp groups {0, 2} and {1, 3} (tp 2): the source, rank 0, is in {0, 2}
    table = np.zeros((4, _HEADER), dtype=np.int64)
    table[:, _HAS_METRIC], table[:, _METRIC] = 1, np.array(metrics).view(np.int64)
    groups = [[0, 2], [1, 3]]
    got = {op: agreed_metric(table, [0, 1, 2, 3], 0, groups, op, "refuse") for op in ("mean", "sum", "min", "max")}
    assert got == {"mean": (0.1 + 0.2) / 2, "sum": 0.1 + 0.2, "min": 0.1, "max": 0.2}
    assert agreed_metric(table, [0, 1, 2, 3], 0, [[0, 1, 2, 3]], "mean", "refuse") == math.fsum(metrics) / 4
    table[:, _METRIC] = np.array([1e308, 1e308, 1e308, 1e308]).view(np.int64)  # finite, their sum is not
    assert agreed_metric(table, [0, 1, 2, 3], 0, groups, "mean", "refuse") == 1e308
    with pytest.raises(MetricError, match="the sum of the metrics .* is not finite"):
        agreed_metric(table, [0, 1, 2, 3], 0, groups, "sum", "refuse")
    table[0, _METRIC] = np.array([math.nan]).view(np.int64)[0]
    assert math.isnan(agreed_metric(table, [0, 1, 2, 3], 0, groups, "mean", "skip"))  # every rank skips it
    with pytest.raises(MetricError, match=r"ranks \[0\] gave a metric that is not finite"):
        agreed_metric(table, [0, 1, 2, 3], 0, groups, "mean", "refuse")
    table[:, _HAS_METRIC] = 0
    assert agreed_metric(table, [0, 1, 2, 3], 0, groups, "mean", "refuse") is None


def test_a_one_element_tensor_metric_is_read_once():
    opt = _opt()
    hook = LRSchedulerHook(cs.ReduceLROnPlateauLR(opt, 100, patience=0))
    hook.step(0, metric=torch.tensor(1.0))
    hook.step(1, metric=torch.tensor([2.0]))
    assert hook.lr_scheduler.plateau.best == 1.0 and _lrs(opt) == [0.05, 0.05]


# --------------------------------------------------------- worlds 2 and 4
def _oracle(kind, size, start=0, stop=W.UPDATES, sign=1.0, resumed_size=None):
    """One process: the lrs of ``kind`` observing the dp mean of ``size`` ranks (of ``resumed_size`` after update 15)."""
    s = W.schedule(kind)
    seen = []
    for n in range(stop):
        s.step_to(n)
        if n % W.EVAL_EVERY == 0:
            s.observe(sign * W.agreed_metric(n, size if n <= 15 or resumed_size is None else resumed_size))
        seen.append(s.get_last_lr())
    return seen[start:], s.plateau.state_dict()


def _local_decisions_differ(size):
    """Each rank alone, judging its own loss, would reach other lrs: what the sync prevents."""
    alone = []
    for i in range(size):
        s, seen = W.schedule(), []
        for n in range(W.UPDATES):
            s.step_to(n)
            if n % W.EVAL_EVERY == 0:
                s.observe(W.local_metric(n, i, size))
            seen.append(tuple(s.get_last_lr()))
        alone.append(tuple(seen))
    return len(set(alone)) > 1


@pytest.mark.multiprocess
@pytest.mark.timeout(300)
@pytest.mark.parametrize("world,shape", [(2, None), (4, None), (4, (2, 2))], ids=["world2", "world4-dp4", "world4-dp2xtp2"])
def test_every_rank_makes_the_same_decisions_from_the_agreed_metric(tmp_path, world, shape):
    size = shape[0] if shape else world
    assert _local_decisions_differ(size)
    results = run(world, W.all_scenarios, shape, str(tmp_path / "ckpt"), tmp_path=tmp_path / "run", timeout=280)
    expected, state = _oracle("class", size)
    composed, composed_state = _oracle("composed", size, sign=-1.0)
    for r, res in enumerate(results):
        assert res["agree"]["seen"] == expected, f"rank {r}"
        assert res["agree"]["plateau"] == state and state["levels"] is not None, f"rank {r}: {state}"
        assert res["agree"]["calls"].count("all_to_all_single") == W.UPDATES, "one collective per update"
        assert res["overlap"]["seen"] == expected and res["overlap"]["calls"] == ["all_to_all_single"] * W.UPDATES
        assert res["composed"]["seen"] == composed and res["composed"]["plateau"] == composed_state, f"rank {r}"
        hostile = res["hostile"]
        last = world - 1
        for name, (kind, words) in {
            "one rank without a metric": ("MetricError", f"ranks [{last}] gave no metric"),
            "a NaN metric on one rank": ("MetricError", f"ranks [{last}] were given a metric that cannot be observed"),
            "an inf metric on one rank": ("MetricError", f"ranks [{last}] were given a metric that cannot be observed"),
            "a metric that is not a number": ("MetricError", f"ranks [{last}] were given a metric"),
            "an int past the floats": ("MetricError", f"ranks [{last}] were given a metric"),
            "the skip's warning as an error": ("RuntimeError", f"ranks [{last}] failed before the sync"),
            "observed outside the hook": ("MetricError", f"ranks [{last}] hold other plateau decisions"),
            "a schedule that does not listen": ("MetricError", f"ranks [{last}] were given a metric"),
            "a metric at a step without a sync": ("MetricError", f"ranks {list(range(world))} were given a metric"),
            "metric_op differs": ("ScheduleMismatchError", "metric_op: source='mean', rank='max'"),
        }.items():
            got = hostile[name]
            assert got[0] == kind and words in got[1], f"{name}: rank {r}: {got}"
            assert got[2] or (name == "observed outside the hook" and r == last), f"{name}: rank {r} changed its plateau"
            if kind == "MetricError" and name not in ("a schedule that does not listen", "metric_op differs"):
                before = [7, 7] if name == "a metric at a step without a sync" else [5, 5]
                assert got[3] == before, f"{name}: rank {r} kept the refused step: {got[3]}"  # on every rank
        for name in ("retried after a refusal", "sync_every=3, a metric off the sync on one rank"):
            assert hostile[name][0] is None and hostile[name][3] == [7 if "retried" in name else 11] * 2, hostile[name]
        skipped = hostile["NaN skipped"]
        assert skipped[0] is None and any("every rank skips this observation" in w for w in skipped[1]) and skipped[2]
    path = results[0]["agree"]["path"]
    assert path and all(res["agree"]["path"] == path for res in results)
    other = {2: (4, (2, 2)), 4: (2, None)}[world]  # resume on another world size
    resumed = run(other[0], W.resume_on, other[1], path, tmp_path=tmp_path / "resume", timeout=120)
    expected, state = _oracle("class", size, start=16, resumed_size=other[1][0] if other[1] else other[0])
    for r, res in enumerate(resumed):
        assert res["seen"] == expected and res["plateau"] == state, f"resumed rank {r}"


def test_a_resume_at_world1_from_a_state_of_world2_continues(tmp_path):
    """The saved plateau is rank-independent: world 1 continues a 2-rank run's decisions (the oracle's)."""
    expected, state = _oracle("class", 2)
    first = W.schedule()
    _run_hookless = _oracle("class", 2, stop=16)
    s = W.schedule()
    for n in range(16):
        s.step_to(n)
        if n % W.EVAL_EVERY == 0:
            s.observe(W.agreed_metric(n, 2))
    assert s.get_last_lr() == _run_hookless[0][-1] == expected[15]
    first.load_state_dict(json.loads(json.dumps(s.state_dict())))
    hook = LRSchedulerHook(first)
    seen = []
    for n in range(16, W.UPDATES):
        hook.step(n, metric=W.agreed_metric(n, 2) if n % W.EVAL_EVERY == 0 else None)
        seen.append(first.get_last_lr())
    assert seen == expected[16:] and first.plateau.state_dict() == state
