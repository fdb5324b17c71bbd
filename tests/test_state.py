"""Issue #19 section 1: a saved state is read once, into one checked, frozen value (colossal_sched.state)."""
import ast
import dataclasses
import json
import pathlib

import pytest
import torch

import colossal_sched as cs
from colossal_sched import base, checkpoint, state
from colossal_sched.checkpoint import CheckpointError, read_booster_state, restore, resume, save_booster_state
from colossal_sched.state import MAX_DEPTH, SavedState, read_state
from conftest import make_optimizer
from hooks import LRSchedulerHook

PACKAGE = pathlib.Path(cs.__file__).parent


def hook_at(step, total=100, warmup=10, lrs=(0.1, 0.2)):
    hook = LRSchedulerHook(cs.CosineAnnealingWarmupLR(make_optimizer(len(lrs), lrs=lrs), total, warmup_steps=warmup))
    hook.step(step)
    return hook


def snapshot(hook):
    s = hook.lr_scheduler
    groups = [{k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in g.items() if k != "params"}
              for g in s.optimizer.param_groups]
    return type(s), s.hyperparameters(), s.base_lrs, s.last_epoch, s.get_last_lr(), groups, hook.global_step


# ------------------------------------------------------------------ every format, one value
def test_every_wrapping_of_our_state_reads_to_the_same_frozen_value(tmp_path):
    hook = hook_at(37)
    packed = hook.state_dict()
    payload = json.loads(packed["colossal_sched"])
    save_booster_state(hook, str(tmp_path))
    torch.save(hook.lr_scheduler.state_dict(), tmp_path / "lr_scheduler.pt")
    values = [read_state(packed), read_state(payload), read_state(json.loads(json.dumps(payload))),
              read_booster_state(str(tmp_path))]
    assert all(v == values[0] for v in values)
    bare = [read_state(hook.lr_scheduler.state_dict()), read_booster_state(str(tmp_path / "lr_scheduler.pt"))]
    assert all(dataclasses.replace(v, global_step=37, clock=values[0].clock) == values[0] for v in bare)
    v = values[0]
    assert (v.native, v.cls, v.base_lrs, v.step, v.global_step) == (True, "CosineAnnealingWarmupLR", (0.1, 0.2), 37, 37)
    assert v.clock == {"samples": 0, "tokens": 0, "skipped": 0} and bare[0].clock is None  # the hook's clock, not a bare state's
    assert v.hyperparams == {"total_steps": 100, "warmup_steps": 10, "eta_min": 0.0}
    assert read_state(v) is v  # a read value passes through


def test_torch_and_colossalai_states_read_to_the_same_kind_of_value(tmp_path):
    opt = make_optimizer(2, lrs=(0.1, 0.2))
    theirs = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100, eta_min=0.01)
    for _ in range(9):
        opt.step(), theirs.step()
    torch.save(theirs.state_dict(), tmp_path / "torch.pt")
    read, loaded = read_state(theirs.state_dict()), read_booster_state(str(tmp_path / "torch.pt"))
    assert read == loaded and not read.native and read.cls == "CosineAnnealingLR" and read.step == 9
    assert read.base_lrs == (0.1, 0.2) and read.hyperparams is None and read.global_step is None
    # ColossalAI's two-stage state: the outer scheduler stops counting once the inner one starts
    colossalai = {"warmup_epochs": 10, "after_scheduler_type": "CosineAnnealingLR", "finished": True, "last_epoch": 10,
                  "base_lrs": [0.1, 0.2], "_last_lr": [0.05, 0.1],
                  "after_scheduler_dict": {"T_max": 90, "eta_min": 0.0, "last_epoch": 27, "base_lrs": [0.1, 0.2]}}
    value = read_state(colossalai)
    assert (value.native, value.cls, value.step) == (False, "CosineAnnealingWarmupLR", 37)
    sched = cs.CosineAnnealingWarmupLR(make_optimizer(2, lrs=(0.1, 0.2)), 100, warmup_steps=10)
    sched.load_state_dict(value)
    assert sched.last_epoch == 37


def test_the_value_is_frozen_and_hands_out_fresh_copies():
    value = read_state(hook_at(5).state_dict())
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.step = 6
    with pytest.raises(TypeError):
        value.fields["hyperparams"]["total_steps"] = 1
    copy = value.scheduler_state()
    copy["hyperparams"]["total_steps"] = 1
    copy["base_lrs"].append(9.0)
    assert value.hyperparams["total_steps"] == 100 and value.scheduler_state()["base_lrs"] == [0.1, 0.2]


# ------------------------------------------------------------------ one validator, one depth limit
def test_one_depth_limit_holds_for_a_checkpoint_and_for_a_spec():
    spec = {"type": "constant"}
    for _ in range(4):  # the phases list, 4 products (a dict and its factors list each), the constant: 10 levels
        spec = {"type": "product", "factors": [spec]}
    opt = make_optimizer(1, lrs=(0.1,))
    hook = LRSchedulerHook(cs.ComposedLR(opt, 40, phases=[spec]))
    hook.step(12)
    other = LRSchedulerHook(cs.ComposedLR(make_optimizer(1, lrs=(0.1,)), 40, phases=[spec]))
    restore(other, json.loads(json.dumps(hook.state_dict())))
    assert other.global_step == 12 and other.lr_scheduler.get_last_lr() == hook.lr_scheduler.get_last_lr()
    deeper = {"type": "product", "factors": [spec]}
    with pytest.raises(ValueError, match=rf"phases\[0\].*nested {MAX_DEPTH + 2} levels.*at most {MAX_DEPTH}"):
        cs.ComposedLR(make_optimizer(1, lrs=(0.1,)), 40, phases=[deeper])
    saved = hook.lr_scheduler.state_dict()
    saved["hyperparams"]["phases"] = [deeper]
    with pytest.raises(CheckpointError, match=rf"hyperparams.phases.*more than {MAX_DEPTH} levels"):
        read_state(saved)
    for field in ("replans", "group_names"):  # every other field has the same limit
        nested = 0
        for _ in range(MAX_DEPTH + 1):
            nested = [nested]
        with pytest.raises(CheckpointError, match=rf"{field}.*more than {MAX_DEPTH} levels"):
            read_state({**hook.lr_scheduler.state_dict(), field: nested})


@pytest.mark.parametrize("bad,needle", [
    ({"eta_min": object()}, "not plain data"),
    ({"eta_min": torch.zeros(1)}, "not plain data"),
    ({"eta_min": {1.5: 2}}, "key"),
    ({"eta_min": "x" * (state.MAX_STR + 1)}, "characters"),
    ({"eta_min": list(range(state.MAX_VALUES))}, "values"),
])
def test_the_validator_refuses_what_is_not_plain_data_briefly(bad, needle):
    saved = hook_at(5).lr_scheduler.state_dict()
    saved["hyperparams"].update(bad)
    with pytest.raises(CheckpointError, match=needle) as err:
        read_state(saved)
    assert len(str(err.value)) < 1024


# ------------------------------------------------------------------ read once
@pytest.fixture
def counted(monkeypatch):
    calls = {"check_plain": 0, "stand_in": 0, "for_scheduler": 0}

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(state, "check_plain", counting("check_plain", state.check_plain))
    for module in (base, checkpoint):
        monkeypatch.setattr(module, "stand_in_optimizer", counting("stand_in", base.stand_in_optimizer))
    monkeypatch.setattr(SavedState, "for_scheduler", counting("for_scheduler", SavedState.for_scheduler))
    return calls


@pytest.mark.parametrize("case", ["same", "use_checkpoint", "another class"])
def test_a_restore_parses_the_state_once_and_builds_no_stand_in(counted, case):
    saved = hook_at(55).state_dict()
    if case == "same":
        hook, mode = hook_at(0), "raise"
    elif case == "use_checkpoint":
        hook, mode = hook_at(0, total=120, warmup=5), "use_checkpoint"
    else:
        hook, mode = LRSchedulerHook(cs.CosineAnnealingLR(make_optimizer(2, lrs=(0.1, 0.2)), 100)), "use_checkpoint"
    chosen = restore(hook, saved, mode)
    assert type(chosen) is cs.CosineAnnealingWarmupLR and chosen.total_steps == 100 and hook.global_step == 55
    assert chosen.get_last_lr() == hook_at(55).lr_scheduler.get_last_lr()
    assert counted == {"check_plain": 1, "stand_in": 0, "for_scheduler": 1 if case != "another class" else 2}


def test_the_hook_parses_a_state_once(counted):
    hook = hook_at(0)
    hook.load_state_dict(hook_at(33).state_dict())
    assert hook.global_step == 33 and hook.lr_scheduler.get_last_lr() == hook_at(33).lr_scheduler.get_last_lr()
    assert counted == {"check_plain": 1, "stand_in": 0, "for_scheduler": 1}


def test_a_read_value_is_never_parsed_again(counted):
    value = read_state(hook_at(20).state_dict())
    assert counted["check_plain"] == 1
    sched = cs.CosineAnnealingWarmupLR(make_optimizer(2, lrs=(0.1, 0.2)), 100, warmup_steps=10)
    sched.load_state_dict(value)
    resume(sched, value)
    assert sched.last_epoch == 20 and counted["check_plain"] == 1
    rebuilt = cs.ClosedFormLR.from_state(value)  # inspect's: a stand-in optimizer, the value read once
    assert rebuilt.get_last_lr() == sched.get_last_lr() and counted == {"check_plain": 1, "stand_in": 1, "for_scheduler": 3}


# ------------------------------------------------------------------ one rollback
def tensor_hook(step, **kw):
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    opt = torch.optim.SGD([{"params": [p], "lr": torch.tensor(lr)} for p, lr in zip(params, (0.1, 0.2))], lr=0.1)
    hook = LRSchedulerHook(cs.CosineAnnealingWarmupLR(opt, kw.get("total", 100), warmup_steps=kw.get("warmup", 10)))
    hook.step(step)
    return hook


def refusals():
    good = hook_at(40).lr_scheduler.state_dict()
    zero_total = {**good, "hyperparams": {**good["hyperparams"], "total_steps": 0}}
    return {
        "mismatch": (good, "raise", cs.ScheduleMismatchError),
        "invalid hyperparams": (zero_total, "use_checkpoint", CheckpointError),
        "unknown class": ({**good, "class": "EvilLR"}, "use_checkpoint", CheckpointError),
        "negative base lr": ({**good, "base_lrs": [0.1, -1.0]}, "use_checkpoint", CheckpointError),
        "bad global step": ({"scheduler": good, "global_step": -3}, "use_checkpoint", CheckpointError),
    }


@pytest.mark.parametrize("name", sorted(refusals()))
def test_a_refused_state_changes_nothing_a_tensor_lr_included(name):
    saved, mode, error = refusals()[name]
    hook = tensor_hook(7, total=120, warmup=5)
    lr_tensors = [g["lr"] for g in hook.lr_scheduler.optimizer.param_groups]
    before = snapshot(hook)
    with pytest.raises(error):
        restore(hook, saved, mode)
    assert snapshot(hook) == before
    assert [g["lr"] for g in hook.lr_scheduler.optimizer.param_groups] == lr_tensors  # the same tensors, not copies
    assert all(a is b for a, b in zip(lr_tensors, (g["lr"] for g in hook.lr_scheduler.optimizer.param_groups)))
    if name != "bad global step":
        sched = hook.lr_scheduler
        with pytest.raises((CheckpointError, cs.ScheduleMismatchError)):
            sched.load_state_dict(saved, strict=name not in ("invalid hyperparams", "negative base lr"))
        assert snapshot(hook) == before


def test_a_state_refused_after_it_was_partly_applied_is_rolled_back():
    """The saved gamma configures, then its lr overflows within [0, T]: the half-applied load is undone."""
    hook = LRSchedulerHook(cs.ExponentialLR(make_optimizer(2, lrs=(0.1, 0.2)), 100, gamma=0.9))
    hook.step(10)
    saved = hook.lr_scheduler.state_dict()
    saved["hyperparams"]["gamma"] = 1e10
    before = snapshot(hook)
    with pytest.raises(CheckpointError, match="gamma"):
        hook.lr_scheduler.load_state_dict(saved, strict=False)
    assert snapshot(hook) == before and hook.lr_scheduler.gamma == 0.9
    with pytest.raises(CheckpointError, match="gamma"):
        restore(hook, saved, "use_checkpoint")
    assert snapshot(hook) == before and hook.lr_scheduler.gamma == 0.9


def test_a_refused_construction_leaves_the_optimizer_as_it_was():
    opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": torch.tensor(0.5)}], lr=0.1)
    lr = opt.param_groups[0]["lr"]
    with pytest.raises(ValueError, match="gamma"):
        cs.ExponentialLR(opt, 10_000, gamma=1e10)
    assert opt.param_groups[0]["lr"] is lr and lr.item() == 0.5 and "initial_lr" not in opt.param_groups[0]


# ------------------------------------------------------------------ rebuildable, no import circle
def test_rebuildable_is_one_class_attribute():
    assert {n for n, c in cs.SCHEDULERS.items() if not c.rebuildable} == {"LambdaLR", "MultiplicativeLR"}
    saved = cs.LambdaLR(make_optimizer(), 50, lr_lambda=lambda t: 0.9**t).state_dict()
    with pytest.raises(CheckpointError, match="user functions"):
        cs.ClosedFormLR.from_state(saved)
    from launch_scripts.train import CLI_SCHEDULERS
    assert set(CLI_SCHEDULERS) == {n for n, c in cs.SCHEDULERS.items() if c.rebuildable}


def test_reading_a_state_imports_no_scheduler_module():
    tree = ast.parse((PACKAGE / "state.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level}
    assert imported <= {None, "errors", "clock"}  # `from . import _validate`, `.errors`, `.clock`: no circle with base
    clock = {node.module for node in ast.walk(ast.parse((PACKAGE / "clock.py").read_text()))
             if isinstance(node, ast.ImportFrom) and node.level}
    assert clock == {None}  # the clock imports `_validate` only
    assert not (PACKAGE / "compat.py").exists()


@pytest.mark.parametrize("how", ["resume use_checkpoint", "restore use_checkpoint", "load strict=False"])
def test_a_saved_state_missing_a_hyperparameter_is_refused_never_filled_with_a_default(how):
    saved = hook_at(5, total=50).lr_scheduler.state_dict()
    del saved["hyperparams"]["warmup_steps"]  # the default (0) would give another schedule than the saved one
    hook = hook_at(5, total=100)
    before = snapshot(hook)
    with pytest.raises(CheckpointError, match="warmup_steps"):
        if how == "resume use_checkpoint":
            resume(hook.lr_scheduler, saved, on_mismatch="use_checkpoint")
        elif how == "restore use_checkpoint":
            restore(hook, saved, "use_checkpoint")
        else:
            hook.lr_scheduler.load_state_dict(saved, strict=False)
    assert snapshot(hook) == before


@pytest.mark.parametrize("case", ["one group saved, two held", "a group name the state lacks"])
def test_a_refused_from_state_leaves_the_given_optimizer_as_it_was(case):
    hook = hook_at(0, lrs=(0.1,) if case.startswith("one") else (0.1, 0.2))
    opt = make_optimizer(2, lrs=(0.5, 0.7))
    if case.startswith("a group"):
        for mine, theirs, (a, b) in zip(hook.lr_scheduler.optimizer.param_groups, opt.param_groups,
                                         [("embed", "embed"), ("decay", "head")]):
            mine["name"], theirs["name"] = a, b
    hook.step(5)
    saved = hook.lr_scheduler.state_dict()
    before = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    with pytest.raises(CheckpointError):
        cs.ClosedFormLR.from_state(saved, opt)
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == before
