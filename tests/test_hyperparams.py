"""Issue 18 part 4: every hyperparameter, not only the lr (weight decay, momentum, Adam's beta1, a key of your own),
scheduled with the same phases and carried with the lr; per-group values stay per group."""
import math
import warnings

import pytest
import torch

import colossal_sched as cs
from colossal_sched.checkpoint import restore
from colossal_sched.errors import ScheduleMismatchError
from distributed import run
from hooks import LRSchedulerHook
import clock_workers

T = 40


def adamw(lrs=(0.1, 0.2), wds=(0.1, 0.05), tensor=False):
    wrap = (lambda v: torch.tensor(v)) if tensor else (lambda v: v)
    return torch.optim.AdamW([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": wrap(lr), "weight_decay": wrap(wd)}
                              for lr, wd in zip(lrs, wds)])


def lr_and_wd(opt, end_wd=0.01, style="cosine"):
    lr = cs.CosineAnnealingWarmupLR(opt, T, 4)
    wd = (cs.CosineAnnealingLR.for_key("weight_decay", opt, T, eta_min=end_wd) if style == "cosine"
          else cs.ComposedLR.for_key("weight_decay", opt, T, [{"type": style, "end_lr": end_wd}] if style == "linear"
                                     else [{"type": "constant"}]))
    return lr.add_schedules(wd)


def megatron_wd(t, start, end, style):
    """Megatron's OptimizerParamScheduler.get_wd: start_wd to end_wd over the run, written out."""
    ratio = min(t, T) / T
    coeff = {"constant": 1.0, "linear": 1.0 - ratio, "cosine": 0.5 * (math.cos(math.pi * ratio) + 1.0)}[style]
    return end + coeff * (start - end) if style != "constant" else start


@pytest.mark.parametrize("style", ["constant", "linear", "cosine"])
def test_weight_decay_follows_megatrons_start_to_end_per_group(style):
    opt = adamw()
    sched = lr_and_wd(opt, style=style)
    for t in range(T + 3):
        sched.step_to(t)
        for g, start in zip(opt.param_groups, (0.1, 0.05)):
            assert g["weight_decay"] == pytest.approx(megatron_wd(t, start, 0.01, style), rel=1e-14, abs=1e-17)
        assert [g["lr"] for g in opt.param_groups] == sched.lr_at(t)


def test_beta1_momentum_and_a_key_of_your_own():
    opt = adamw()
    for g in opt.param_groups:
        g["ema_decay"] = 0.5
    lr = cs.LinearWarmupLR(opt, T)
    lr.add_schedules(cs.ComposedLR.for_key("beta1", opt, T, [{"type": "linear", "end_lr": 0.95}]),
                     cs.ComposedLR.for_key("ema_decay", opt, T, [{"type": "cosine", "end_lr": 0.0}]))
    lr.step_to(T // 2)
    assert [g["betas"] for g in opt.param_groups] == [(0.925, 0.999)] * 2  # beta2 untouched
    assert [g["ema_decay"] for g in opt.param_groups] == pytest.approx([0.25, 0.25])
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    cs.StepLR(sgd, T, step_size=10, gamma=0.1).add_schedules(
        cs.ComposedLR.for_key("momentum", sgd, T, [{"type": "linear", "end_lr": 0.99}])).step_to(T)
    assert sgd.param_groups[0]["momentum"] == pytest.approx(0.99)
    with pytest.raises(ValueError, match="cycles the momentum already"):
        opt = adamw()
        cs.OneCycleLR(opt, T).add_schedules(cs.LinearWarmupLR.for_key("beta1", opt, T))


def test_tensor_values_of_every_key_are_filled_in_place():
    opt = adamw(tensor=True)
    objects = [(g["lr"], g["weight_decay"]) for g in opt.param_groups]
    sched = lr_and_wd(opt)
    for t in range(0, T, 7):
        sched.step_to(t)
        assert [(g["lr"], g["weight_decay"]) for g in opt.param_groups] == objects or all(
            a is b and c is d for (a, c), (b, d) in zip(objects, [(g["lr"], g["weight_decay"]) for g in opt.param_groups]))
        assert all(g["lr"] is o[0] and g["weight_decay"] is o[1] for g, o in zip(opt.param_groups, objects))
        assert [g["weight_decay"].item() for g in opt.param_groups] == pytest.approx(
            [megatron_wd(t, s, 0.01, "cosine") for s in (0.1, 0.05)], rel=1e-6)


def test_the_other_keys_are_in_the_state_the_fingerprint_and_a_replan():
    opt = adamw()
    sched = lr_and_wd(opt)
    sched.step_to(15)
    state = sched.state_dict()
    assert state["schedules"]["weight_decay"]["key"] == "weight_decay"
    assert lr_and_wd(adamw(), end_wd=0.02).fingerprint() != sched.fingerprint() == lr_and_wd(adamw()).fingerprint()
    with pytest.raises(ScheduleMismatchError, match="weight_decay.eta_min: saved=0.01, current=0.02"):
        lr_and_wd(adamw(), end_wd=0.02).load_state_dict(state)
    with pytest.raises(ScheduleMismatchError, match="schedules: saved=\\['weight_decay'\\], current=\\[\\]"):
        cs.CosineAnnealingWarmupLR(adamw(), T, 4).load_state_dict(state)
    rebuilt = cs.ClosedFormLR.from_state(state, adamw())
    assert [g["weight_decay"] for g in rebuilt.optimizer.param_groups] == [g["weight_decay"] for g in opt.param_groups]
    sched.replan(2 * T)
    wd = sched._companions[0]
    assert wd.total_steps == 2 * T and wd.last_epoch == 15
    assert [g["weight_decay"] for g in opt.param_groups] == wd.lr_at(15)


def test_a_key_the_optimizer_lacks_and_a_tensor_on_another_device_are_refused():
    with pytest.raises(ValueError, match="key 'momentum': param_groups\\[0\\] has no such hyperparameter"):
        cs.CosineAnnealingLR.for_key("momentum", adamw(), T)
    with pytest.raises(TypeError, match="key must be a param-group key"):
        cs.CosineAnnealingLR.for_key("", adamw(), T)
    meta = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1, device="meta"))], lr=torch.tensor(0.1), capturable=True)
    lr_before = meta.param_groups[0]["lr"]
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['lr'\] is a tensor on cpu, but the group's params are on meta"):
        cs.CosineAnnealingLR(meta, T)
    assert meta.param_groups[0]["lr"] is lr_before and "initial_lr" not in meta.param_groups[0]
    opt = adamw()
    sched = cs.CosineAnnealingLR(opt, T)
    with pytest.raises(ValueError, match="'weight_decay' is scheduled twice"):
        sched.add_schedules(cs.CosineAnnealingLR.for_key("weight_decay", opt, T), cs.CosineAnnealingLR.for_key("weight_decay", opt, T))
    with pytest.raises(ValueError, match="counts samples, this schedule updates"):
        sched.add_schedules(cs.CosineAnnealingLR.for_key("weight_decay", opt, T).counting("samples"))


def test_a_failed_load_leaves_every_schedule_of_the_set_as_it_was():
    opt = adamw()
    sched = lr_and_wd(opt)
    beta1 = cs.ComposedLR.for_key("beta1", opt, T, [{"type": "linear", "end_lr": 0.95}])
    sched.add_schedules(beta1)
    sched.step_to(10)
    state = sched.state_dict()
    state["schedules"]["weight_decay"]["hyperparams"]["eta_min"] = 0.05  # accepted with strict=False ...
    state["schedules"]["beta1"]["hyperparams"]["phases"][0]["end_lr"] = 1.5  # ... but beta1 >= 1 is refused
    before = (sched.fingerprint(), [c.state_dict() for c in sched._companions], [dict(g) for g in opt.param_groups])
    with pytest.raises(cs.CheckpointError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched.load_state_dict(state, strict=False)
    assert (sched.fingerprint(), [c.state_dict() for c in sched._companions], [dict(g) for g in opt.param_groups]) == before
    with pytest.raises(ValueError, match=r"the beta1 of param_groups\[0\] at step \d+ would be 5.0"):
        cs.ComposedLR.for_key("beta1", adamw(), T, [{"type": "linear", "end_lr": 5.0}])


def test_per_group_bounds_stay_per_group_after_every_operation():
    """Megatron-LM 7173 / DeepSpeed 8171 shape: groups with max lrs [0.1, 0.2] keep 0.2 after every operation."""
    def peaks(s):
        return [max(s.lr_at(t)[g] for t in range(s.total_steps + 1)) for g in range(2)]

    opt = adamw(lrs=(0.1, 0.2))
    sched = lr_and_wd(opt)
    hook = LRSchedulerHook(sched)
    for n in range(10):
        hook.step(n)
    assert peaks(sched) == [0.1, 0.2] and sched.base_lrs == [0.1, 0.2]
    sched.replan(2 * T)
    assert peaks(sched) == [0.1, 0.2]
    state = hook.state_dict()
    for choice in ("use_checkpoint", "use_current"):
        target = LRSchedulerHook(lr_and_wd(adamw(lrs=(0.1, 0.2)), end_wd=0.02))  # differs: the choice decides
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            chosen = restore(target, state, on_mismatch=choice, logger=lambda _: None)
        assert chosen.base_lrs == [0.1, 0.2] and peaks(chosen) == [0.1, 0.2], choice
        assert [g["initial_lr"] for g in chosen.optimizer.param_groups] == [0.1, 0.2]
        assert [g["initial_weight_decay"] for g in chosen.optimizer.param_groups] == [0.1, 0.05]
    rebuilt = cs.ClosedFormLR.from_state(state)
    assert rebuilt.base_lrs == [0.1, 0.2] and rebuilt._companions[0].base_lrs == [0.1, 0.05]


@pytest.mark.multiprocess
@pytest.mark.timeout(120)
@pytest.mark.parametrize("world", [2, 4])
def test_every_rank_holds_the_same_lr_weight_decay_and_beta1_and_another_wd_schedule_is_refused(tmp_path, world):
    results = run(world, clock_workers.hyperparams_agree, tmp_path=tmp_path)
    assert all(res["seen"] == results[0]["seen"] for res in results)
    assert len({row[0][1] for row in results[0]["seen"]}) > 1  # the weight decay moved
    for res in results:
        assert res["refusal"] is not None and "weight_decay.hyperparams.eta_min" in res["refusal"], res["refusal"]
