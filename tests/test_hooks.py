"""Issue #3: the hook steps on the engine's global step; legacy Trainer and Booster with real colossalai."""
import pytest
import torch

import colossal_sched as cs
from conftest import make_optimizer
from distributed import run
from hooks import LRSchedulerHook
import workers


def hook_for(name="CosineAnnealingWarmupLR", total=40, **kw):
    kw = kw or ({"warmup_steps": 5} if name == "CosineAnnealingWarmupLR" else {})
    opt = make_optimizer()
    return LRSchedulerHook(cs.SCHEDULERS[name](opt, total, **kw)), opt


def lrs(opt):
    return [g["lr"] for g in opt.param_groups]


def test_update_n_runs_with_lr_at_n_under_gradient_accumulation():
    hook, opt = hook_for()
    for n in range(30):
        for _micro in range(4):
            assert hook.step(n) == hook.lr_scheduler.lr_at(n)
            assert lrs(opt) == hook.lr_scheduler.lr_at(n)


def test_a_skipped_update_does_not_advance_the_schedule():
    hook, opt = hook_for()
    global_step = 0
    for it in range(20):
        hook.step(global_step)
        assert lrs(opt) == hook.lr_scheduler.lr_at(global_step)
        overflow = it in (3, 4, 11)  # fp16 overflow: the engine skipped this update
        if not overflow:
            global_step += 1
    assert hook.global_step == hook.lr_scheduler.last_epoch == 20 - 3 - 1  # 3 skipped updates


def test_a_late_attach_and_a_resume_start_at_the_engine_step():
    hook, opt = hook_for()
    hook.step(27)  # attached at update 27: no replay, lr_at(27) right away
    assert lrs(opt) == hook.lr_scheduler.lr_at(27)
    state = hook.state_dict()
    again, opt2 = hook_for()
    again.load_state_dict(state)
    assert again.global_step == 27 and lrs(opt2) == lrs(opt)
    again.step(28)
    assert lrs(opt2) == hook.lr_scheduler.lr_at(28)


def test_by_epoch_schedules_on_the_epoch():
    class Trainer:
        cur_epoch = 0
        cur_step = 0
        states = {}

    hook, opt = hook_for("StepLR", total=10, step_size=1, gamma=0.5)
    hook.by_epoch = True
    trainer = Trainer()
    hook.after_hook_is_attached(trainer)
    for epoch in range(4):
        trainer.cur_epoch = epoch
        hook.before_train_epoch(trainer)
        for it in range(3):
            hook.before_train_iter(trainer)
            hook.after_train_iter(trainer, None, None, None)
            assert lrs(opt) == hook.lr_scheduler.lr_at(epoch)
        hook.after_train_epoch(trainer)
        assert trainer.states["metrics"]["train"]["LR"].get_last_step_value() == hook.lr_scheduler.lr_at(epoch + 1)[0]


def test_hook_needs_a_colossal_sched_scheduler_and_valid_options():
    opt = make_optimizer()
    with pytest.raises(TypeError, match="lr_scheduler"):
        LRSchedulerHook(torch.optim.lr_scheduler.StepLR(opt, 3))
    with pytest.raises(ValueError, match="on_divergence"):
        LRSchedulerHook(cs.StepLR(opt, 3), on_divergence="ignore")
    with pytest.raises(ValueError, match="sync_every"):
        LRSchedulerHook(cs.StepLR(opt, 3), sync_every=0)


@pytest.mark.multiprocess
@pytest.mark.timeout(240)
@pytest.mark.parametrize("attach_at_epoch", [0, 2], ids=["fresh", "late-attach"])
def test_colossalai_legacy_trainer_with_the_hook(tmp_path, attach_at_epoch):
    results = run(2, workers.legacy_trainer, 4, attach_at_epoch, tmp_path=tmp_path, timeout=200)
    for res in results:
        seen = res["seen"]
        assert seen[0][0] == attach_at_epoch * 5 and len(seen) == (4 - attach_at_epoch) * 5
        for step, lr in seen:
            assert lr == res["expected"][str(step)]
        assert res["state_lr"] == res["final"]
    assert results[0]["seen"] == results[1]["seen"]


@pytest.mark.multiprocess
@pytest.mark.timeout(240)
def test_colossalai_booster_loop_with_save_and_load_lr_scheduler(tmp_path):
    for sub in ("ckpt", "first", "resumed"):
        (tmp_path / sub).mkdir()
    ckpt = str(tmp_path / "ckpt")
    first = run(2, workers.booster_loop, ckpt, 12, None, tmp_path=tmp_path / "first")
    resumed = run(2, workers.booster_loop, ckpt, 12, 6, tmp_path=tmp_path / "resumed")
    for a, b in zip(first, resumed):
        assert a["seen"] == a["expected"]
        assert b["start"] == 6 and b["seen"] == a["seen"][6:]


@pytest.mark.multiprocess
def test_a_hook_built_before_the_process_group_connects_at_its_first_step(tmp_path):
    results = run(2, workers.late_process_group, tmp_path=tmp_path)
    assert results[0] == results[1]


def test_on_divergence_is_checked_even_without_sync():
    with pytest.raises(ValueError, match="on_divergence"):
        LRSchedulerHook(cs.StepLR(make_optimizer(), 3), sync=False, on_divergence="nope")


def test_sync_options_are_validated_once_in_one_place():
    from colossal_sched.lr_sync import SyncOptions

    assert SyncOptions(timeout=5, sync_every=2).timeout == 5.0
    for bad in (dict(on_divergence="nope"), dict(timeout=0), dict(sync_every=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SyncOptions(**bad)
        with pytest.raises(ValueError, match=next(iter(bad))):
            LRSchedulerHook(cs.StepLR(make_optimizer(), 3), **bad)


def test_close_is_idempotent_and_the_hook_is_a_context_manager():
    opt = make_optimizer()
    with LRSchedulerHook(cs.StepLR(opt, 10, step_size=2), overlap=True) as hook:
        hook.step(3)
    hook.close()
    assert hook.lr_sync is None and hook.step(4) == hook.lr_scheduler.lr_at(4)  # one process: nothing to sync
