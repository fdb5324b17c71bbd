"""Issue #4: scheduler state in DCP and Booster checkpoints; resume rules; bad checkpoints; inspect."""
import hashlib
import json
import logging
import os
import pickle
import shutil
import sys

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.stateful import Stateful

import colossal_sched as cs
from colossal_sched.checkpoint import (CheckpointError, load_booster_state, read_booster_state, read_dcp_state, resume,
                                       save_booster_state, unpack_state)
from conftest import make_optimizer
from distributed import run
from hooks import LRSchedulerHook
import workers
import forked


CLI = [sys.executable, "-m", "colossal_sched.cli"]


def hook_at(step, name="CosineAnnealingWarmupLR", total=100, **kw):
    kw = kw or {"warmup_steps": 10}
    hook = LRSchedulerHook(cs.SCHEDULERS[name](make_optimizer(), total, **kw))
    hook.step(step)
    return hook


def dcp_save(path, **state):
    dcp.save(state, checkpoint_id=str(path), no_dist=True)


def digest(path):
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(path)):
        for f in sorted(files):
            h.update(open(os.path.join(root, f), "rb").read())
    return h.hexdigest()


def test_schedulers_and_hooks_are_stateful():
    hook = hook_at(3)
    assert isinstance(hook, Stateful) and isinstance(hook.lr_scheduler, Stateful)


@pytest.mark.parametrize("what", ["hook", "scheduler"])
def test_dcp_save_and_plain_dcp_load_restore_the_state(tmp_path, what):
    src = hook_at(37)
    model = torch.nn.Linear(3, 3)
    obj = src if what == "hook" else src.lr_scheduler
    dcp_save(tmp_path, model=model.state_dict(), lr_scheduler=obj)
    dst = hook_at(0)
    target = dst if what == "hook" else dst.lr_scheduler
    for g in dst.lr_scheduler.optimizer.param_groups:
        g["lr"] = 9.0  # optimizer state not loaded: the lr must still be right
    dcp.load({"lr_scheduler": target}, checkpoint_id=str(tmp_path), no_dist=True)
    assert dst.lr_scheduler.last_epoch == 37
    assert [g["lr"] for g in dst.lr_scheduler.optimizer.param_groups] == src.lr_scheduler.lr_at(37)
    assert unpack_state(read_dcp_state(str(tmp_path)))[0]["class"] == "CosineAnnealingWarmupLR"


def test_stored_state_is_versioned_plain_data_with_group_names_and_small(tmp_path):
    p = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    opt = torch.optim.SGD([{"params": [p[0]], "name": "decay"}, {"params": [p[1]], "name": "no_decay"}], lr=0.1, momentum=0.9)
    hook = LRSchedulerHook(cs.OneCycleLR(opt, 50))
    hook.step(12)
    state = hook.state_dict()
    text = json.dumps(state)
    assert json.loads(text) == state and len(text) < 4096
    sched, step = unpack_state(state)
    payload = json.loads(state["colossal_sched"])
    assert payload["format_version"] == 1 and payload["world_layout"] == {"world_size": 1}
    assert sched["format_version"] == 1 and sched["class"] == "OneCycleLR" and step == 12
    assert sched["group_names"] == ["decay", "no_decay"]
    assert set(sched["hyperparams"]) >= {"total_steps", "pct_start", "div_factor", "final_div_factor"}


def test_resume_identical_schedule_loads_exactly():
    saved = hook_at(55).state_dict()
    sched = cs.CosineAnnealingWarmupLR(make_optimizer(), 100, warmup_steps=10)
    assert resume(sched, saved) is sched and sched.last_epoch == 55 and sched.get_last_lr() == sched.lr_at(55)


def test_resume_mismatch_raises_listing_each_field_with_both_values():
    saved = hook_at(55).state_dict()
    sched = cs.CosineAnnealingWarmupLR(make_optimizer(lrs=(0.3,)), 120, warmup_steps=5)
    before = [g["lr"] for g in sched.optimizer.param_groups]
    with pytest.raises(cs.ScheduleMismatchError) as err:
        resume(sched, saved)
    fields = {f[0]: (f[1], f[2]) for f in err.value.fields}
    assert fields["total_steps"] == (100, 120) and fields["warmup_steps"] == (10, 5) and "base_lrs" in fields
    assert "on_mismatch" in str(err.value)
    assert [g["lr"] for g in sched.optimizer.param_groups] == before and sched.last_epoch == 0  # nothing changed


def test_resume_use_checkpoint_and_use_current_are_logged_with_both_lrs(caplog):
    saved = hook_at(55).state_dict()
    kept = cs.CosineAnnealingWarmupLR(make_optimizer(), 120, warmup_steps=5)
    with caplog.at_level(logging.WARNING, logger="colossal_sched"):
        chosen = resume(kept, saved, on_mismatch="use_checkpoint")
    assert chosen.total_steps == 100 and chosen.warmup_steps == 10 and chosen.last_epoch == 55
    assert "keeping the checkpoint's schedule" in caplog.text and "total_steps: 100 -> 120" in caplog.text
    current = cs.CosineAnnealingWarmupLR(make_optimizer(), 120, warmup_steps=5)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="colossal_sched"):
        chosen = resume(current, saved, on_mismatch="use_current")
    assert chosen.total_steps == 120 and chosen.last_epoch == 55
    assert chosen.get_last_lr() == chosen.lr_at(55)
    assert "keeping the current schedule" in caplog.text and str(hook_at(55).lr_scheduler.lr_at(55)) in caplog.text


def test_resume_from_another_scheduler_class():
    saved = hook_at(20, "StepLR", step_size=5, gamma=0.5).state_dict()
    with pytest.raises(cs.ScheduleMismatchError, match="class: saved='StepLR'"):
        resume(cs.CosineAnnealingLR(make_optimizer(), 100), saved)
    chosen = resume(cs.CosineAnnealingLR(make_optimizer(), 100), saved, on_mismatch="use_checkpoint")
    assert isinstance(chosen, cs.StepLR) and chosen.last_epoch == 20


def test_groups_are_keyed_so_another_layout_errors_clearly():
    saved = hook_at(20).state_dict()
    with pytest.raises(cs.ScheduleMismatchError, match="param groups"):
        resume(cs.CosineAnnealingWarmupLR(make_optimizer(2), 100, warmup_steps=10), saved)


def test_corrupt_truncated_and_tampered_dcp_checkpoints_give_clear_errors(tmp_path):
    good = tmp_path / "good"
    dcp_save(good, lr_scheduler=hook_at(5))
    before = digest(good)
    truncated = tmp_path / "truncated"
    shutil.copytree(good, truncated)
    meta = truncated / ".metadata"
    meta.write_bytes(meta.read_bytes()[:40])
    corrupt = tmp_path / "corrupt"
    shutil.copytree(good, corrupt)
    for f in os.listdir(corrupt):
        if f.endswith(".distcp"):
            (corrupt / f).write_bytes(b"\x00garbage" * 10)
    tampered_meta = tmp_path / "tampered_meta"
    shutil.copytree(good, tampered_meta)
    (tampered_meta / ".metadata").write_bytes(pickle.dumps(Exploit(tmp_path / "PWNED")))
    tampered = tmp_path / "tampered"
    dcp_save(tampered, lr_scheduler={"colossal_sched": Exploit(tmp_path / "PWNED")})
    copies = {p: digest(p) for p in (truncated, corrupt, tampered_meta, tampered)}
    with pytest.raises(CheckpointError, match="metadata"):
        read_dcp_state(str(truncated))
    with pytest.raises(CheckpointError):
        read_dcp_state(str(corrupt))
    with pytest.raises(CheckpointError, match="not a complete DCP checkpoint"):
        read_dcp_state(str(tmp_path / "nowhere"))
    with pytest.raises(CheckpointError, match=r"refusing to unpickle global posix\.system"):
        read_dcp_state(str(tampered_meta))
    with pytest.raises(CheckpointError, match="not plain data"):
        read_dcp_state(str(tampered))
    assert not (tmp_path / "PWNED").exists()
    assert digest(good) == before and unpack_state(read_dcp_state(str(good)))[1] == 5  # reading never writes
    assert {p: digest(p) for p in copies} == copies


class Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_booster_json_state_is_atomic_and_refuses_truncation(tmp_path):
    hook = hook_at(31)
    path = save_booster_state(hook, str(tmp_path), layout={"dp": 1})
    payload = json.load(open(path))
    assert payload["world_layout"] == {"world_size": 1, "dp": 1} and not os.path.exists(path + ".tmp")
    assert payload["global_step"] == 31 and payload["scheduler"]["class"] == "CosineAnnealingWarmupLR"
    other = hook_at(0)
    load_booster_state(other, str(tmp_path))
    assert other.global_step == 31 and other.lr_scheduler.get_last_lr() == hook.lr_scheduler.get_last_lr()
    open(path, "w").write(json.dumps(payload)[:50])
    with pytest.raises(CheckpointError, match="truncated"):
        read_booster_state(str(tmp_path))


@pytest.mark.multiprocess
@pytest.mark.timeout(240)
def test_booster_sharded_checkpoint_carries_the_scheduler_to_every_rank(tmp_path):
    ckpt = tmp_path / "ckpt"
    for sub in ("ckpt", "save", "load"):
        (tmp_path / sub).mkdir()
    saved = run(2, workers.booster_sharded, str(ckpt), "save", tmp_path=tmp_path / "save")
    assert "colossal_sched_lr_scheduler.json" in saved[0]["files"]
    assert any(f.endswith(".index.json") for f in saved[0]["files"])  # really the sharded layout
    loaded = run(2, workers.booster_sharded, str(ckpt), "load", tmp_path=tmp_path / "load")
    for res in loaded:
        assert res["step"] == 13 and res["lr"] == saved[0]["lr"] and res["opt_lr"] == saved[0]["lr"]


@pytest.mark.multiprocess
@pytest.mark.timeout(240)
def test_migrates_a_state_written_by_colossalai_save_lr_scheduler(tmp_path):
    path = tmp_path / "lr_scheduler.pt"
    (tmp_path / "w").mkdir()
    theirs = run(1, workers.colossalai_save_lr_scheduler, str(path), 17, tmp_path=tmp_path / "w")[0]
    hook = LRSchedulerHook(cs.CosineAnnealingWarmupLR(make_optimizer(1, lrs=(0.1,)), 40, warmup_steps=4))
    load_booster_state(hook, str(path))
    assert hook.global_step == 17 and hook.lr_scheduler.last_epoch == 17
    assert hook.lr_scheduler.get_last_lr() == pytest.approx(theirs["lr"], rel=0.05)  # colossalai's cosine drifts
    out = forked.run(CLI + ["inspect", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0 and "step: 17" in out.stdout


def test_cli_inspect_dcp_checkpoint(tmp_path):
    dcp_save(tmp_path / "step_00000042", lr_scheduler=hook_at(42))
    out = forked.run(CLI + ["inspect", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    sched = cs.CosineAnnealingWarmupLR(make_optimizer(), 100, warmup_steps=10)
    assert "CosineAnnealingWarmupLR(total_steps=100, warmup_steps=10, eta_min=0.0)" in out.stdout
    assert "step: 42" in out.stdout and f"next update lr: {sched.lr_at(42)}" in out.stdout
    assert "steps remaining: 58 of 100" in out.stdout
    bad = forked.run(CLI + ["inspect", str(tmp_path / "nope")], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1


def test_cli_inspect_booster_checkpoint(tmp_path):
    save_booster_state(hook_at(7, "StepLR", total=20, step_size=3, gamma=0.5), str(tmp_path))
    out = forked.run(CLI + ["inspect", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "StepLR(total_steps=20, step_size=3, gamma=0.5)" in out.stdout and "steps remaining: 13 of 20" in out.stdout


def test_named_groups_map_onto_a_stage_holding_a_subset():
    p = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
    stage0 = torch.optim.SGD([{"params": [p[0]], "lr": 0.3, "name": "embed"}, {"params": [p[1]], "lr": 0.1, "name": "decay"},
                              {"params": [p[2]], "lr": 0.2, "name": "no_decay"}], lr=0.1)
    saved = LRSchedulerHook(cs.CosineAnnealingLR(stage0, 50))
    saved.step(20)
    stage1 = torch.optim.SGD([{"params": [p[2]], "lr": 0.2, "name": "no_decay"}, {"params": [p[1]], "lr": 0.1, "name": "decay"}],
                             lr=0.1)
    sched = resume(cs.CosineAnnealingLR(stage1, 50), saved.state_dict())
    assert sched.get_last_lr() == [saved.lr_scheduler.get_last_lr()[2], saved.lr_scheduler.get_last_lr()[1]]
    unknown = torch.optim.SGD([{"params": [p[2]], "lr": 0.2, "name": "head"}], lr=0.1)
    with pytest.raises(ValueError, match=r"\['head'\] are not in the saved"):
        resume(cs.CosineAnnealingLR(unknown, 50), saved.state_dict())


def test_use_current_with_a_lambda_schedule_logs_the_saved_lr(caplog):
    saved = LRSchedulerHook(cs.LambdaLR(make_optimizer(), 50, lr_lambda=lambda t: 0.9**t))
    saved.step(10)
    current = cs.LambdaLR(make_optimizer(), 60, lr_lambda=lambda t: 0.9**t)
    with caplog.at_level(logging.WARNING, logger="colossal_sched"):
        resume(current, saved.state_dict(), on_mismatch="use_current")
    assert current.last_epoch == 10 and str(saved.lr_scheduler.get_last_lr()) in caplog.text
