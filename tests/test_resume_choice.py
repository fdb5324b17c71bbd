"""Issue 18, part 6: on resume, which side wins, per field (Megatron's override / use-checkpoint, said once)."""
import json
import logging
import sys

import pytest
import torch
import torch.distributed.checkpoint as dcp

import colossal_sched as cs
from colossal_sched.checkpoint import (CheckpointError, ResumeChoice, ResumeChoiceError, on_mismatch_arg,
                                       read_booster_state, restore, resume, save_booster_state)
from colossal_sched.state import read_state
from conftest import make_optimizer
from hooks import LRSchedulerHook
import forked

CLI = [sys.executable, "-m", "colossal_sched.cli"]
MEGATRON = {"checkpoint": ["step", "samples", "tokens"], "current": ["total_steps"]}


def trained(total=1000, steps=500, name="CosineAnnealingWarmupLR", **kw):
    """A hook after ``steps`` updates of 8 samples each."""
    hook = LRSchedulerHook(cs.SCHEDULERS[name](make_optimizer(), total, **(kw or {"warmup_steps": 10})))
    for t in range(1, steps + 1):
        hook.step(t, samples=8)
    return hook


def fresh(total=2000, name="CosineAnnealingWarmupLR", **kw):
    return LRSchedulerHook(cs.SCHEDULERS[name](make_optimizer(), total, **(kw or {"warmup_steps": 10})))


def snapshot(hook):
    s = hook.lr_scheduler
    return (s, s.state_dict(), [g["lr"] for g in s.optimizer.param_groups], [g.get("initial_lr") for g in s.optimizer.param_groups],
            hook.global_step, hook.clock, hook.resumed)


# ------------------------------------------------------------------ shapes
@pytest.mark.parametrize("policy", [ResumeChoice(**MEGATRON), MEGATRON, "checkpoint=step,samples,tokens;current=total_steps",
                                    "current=total_steps / checkpoint=step samples tokens"])
def test_every_policy_shape_gives_the_same_resume(policy):
    src = trained()
    dst = fresh()
    restore(dst, src.state_dict(), policy)
    assert dst.global_step == 500 and dst.clock == src.clock and dst.lr_scheduler.replans == [(500, 2000)]
    assert dst.resumed == {"step": 500, "kept": ["step", "samples", "tokens", "skipped"],
                           "overridden": [["total_steps", 1000, 2000]], "how": "re-plan at step 500"}


def test_the_choice_is_checked_and_frozen():
    c = ResumeChoice(checkpoint="step,samples", current=["total_steps", "total_steps"])
    assert c.checkpoint == ("step", "samples") and c.current == ("total_steps",) and c.replan
    assert ResumeChoice.parse("current=total_steps;swap") == ResumeChoice(current=("total_steps",), replan=False)
    with pytest.raises(AttributeError):
        c.current = ()
    for bad, match in [({"current": [1]}, "on_mismatch current must be a list of field names"),
                       ({"replan": "yes"}, "replan must be True or False"),
                       ({"checkpoint": ["total_steps"], "current": ["total_steps"]}, "total_steps listed on both sides"),
                       ({"current": ["step", "samples"]}, "step, samples cannot be taken from the current run")]:
        with pytest.raises(ValueError, match=match):
            ResumeChoice(**bad)
    for bad in ["current=total_steps;current=warmup_steps", "kept=step", "current"]:
        with pytest.raises(ResumeChoiceError, match="must be checkpoint=FIELD"):
            ResumeChoice.parse(bad)
    with pytest.raises(ResumeChoiceError, match="unknown key.*'mine'.*allowed: checkpoint, current, replan"):
        ResumeChoice.of({"mine": ["total_steps"]})


def test_the_flag_takes_the_whole_schedule_choices_and_the_per_field_text():
    import argparse

    assert [on_mismatch_arg(v) for v in ("raise", "use_checkpoint", "use_current")] == ["raise", "use_checkpoint", "use_current"]
    assert on_mismatch_arg("checkpoint=step;current=total_steps;swap") == ResumeChoice(("step",), ("total_steps",), False)
    for bad in ("use_both", "current=step", "current=total_steps;checkpoint=total_steps"):
        with pytest.raises(argparse.ArgumentTypeError, match="on_mismatch"):
            on_mismatch_arg(bad)


# ------------------------------------------------------------------ the Megatron case
def test_megatron_override_continues_the_lr_from_the_saved_step():
    src, dst = trained(), fresh()
    restore(dst, src.state_dict(), MEGATRON)
    s = dst.lr_scheduler
    assert s.get_last_lr() == src.lr_scheduler.get_last_lr()  # bit for bit at the saved step
    want = cs.CosineAnnealingWarmupLR(make_optimizer(), 1000, warmup_steps=10)
    want.replan(2000, at_step=500)
    assert all(s.lr_at(t) == want.lr_at(t) for t in (0, 10, 250, 500, 501, 1200, 1999, 2000))
    assert s.lr_at(2000) == [0.0] * 4 and s.lr_at(1000) != [0.0] * 4  # the decay now ends at 2000
    dst.step(501, samples=8)
    assert dst.clock.samples == 4008 and s.last_epoch == 501 and s.get_last_lr() == want.lr_at(501)


def test_megatron_swap_takes_the_new_schedule_at_the_saved_step(caplog):
    src, dst = trained(), fresh()
    with caplog.at_level(logging.WARNING, logger="colossal_sched"):
        restore(dst, src.state_dict(), {**MEGATRON, "replan": False})
    new = cs.CosineAnnealingWarmupLR(make_optimizer(), 2000, warmup_steps=10)
    assert dst.lr_scheduler.get_last_lr() == new.lr_at(500) != src.lr_scheduler.get_last_lr()
    assert dst.resumed["how"] == "swap" and dst.lr_scheduler.replans == []
    assert caplog.text.count("resumed at step 500") == 1  # logged once
    assert "kept from checkpoint: step, samples, tokens, skipped; overridden by the current run (swap): total_steps 1000 -> 2000" in caplog.text


def test_a_new_length_and_decay_length_mixed_with_the_checkpoints_peak():
    kw = {"warmup_steps": 10, "decay_steps": 100}
    src = trained(name="WarmupStableDecayLR", **kw)
    dst = fresh(name="WarmupStableDecayLR", warmup_steps=10, decay_steps=300, min_lr=0.001)
    restore(dst, src.state_dict(), {"checkpoint": ["step", "samples", "min_lr"], "current": ["total_steps", "decay_steps"]})
    s = dst.lr_scheduler
    assert s.get_last_lr() == src.lr_scheduler.get_last_lr() and s.min_lr == 0.0 and s.decay_steps == 300
    assert s.lr_at(1699) == s.lr_at(500) and s.lr_at(1800) < s.lr_at(1700) and s.lr_at(2000) == [0.0] * 4
    assert [o[0] for o in dst.resumed["overridden"]] == ["decay_steps", "total_steps"]
    assert dst.resumed["kept"][-1] == "min_lr"


def test_a_bare_scheduler_and_the_whole_schedule_policies_are_recorded():
    src = trained(steps=50)
    sched = cs.CosineAnnealingWarmupLR(make_optimizer(), 2000, warmup_steps=10)
    assert resume(sched, src.state_dict(), ResumeChoice(current=["total_steps"])) is sched
    assert sched.last_epoch == 50 and sched.get_last_lr() == src.lr_scheduler.get_last_lr()
    dst = fresh()
    restore(dst, src.state_dict(), "use_current")
    assert dst.resumed == {"step": 50, "kept": ["step", "samples", "tokens", "skipped"],
                           "overridden": [["total_steps", 1000, 2000]], "how": "use_current"}
    dst = fresh()
    restore(dst, src.state_dict(), "use_checkpoint")
    assert dst.resumed["kept"][-1] == "total_steps" and dst.resumed["overridden"] == []


def test_a_unit_from_the_current_run_is_placed_by_the_saved_clock():
    src = trained(steps=50)  # 8 samples per update: 400 samples
    dst = LRSchedulerHook(cs.CosineAnnealingWarmupLR(make_optimizer(), 16000, warmup_steps=80).counting("samples"))
    restore(dst, src.state_dict(), {"current": ["unit", "total_steps", "warmup_steps"]})
    s = dst.lr_scheduler
    assert s.unit == "samples" and s.last_epoch == 400 and s.replans == [(400, 16000)]
    assert s.get_last_lr() == cs.CosineAnnealingWarmupLR(make_optimizer(), 1000, warmup_steps=80).lr_at(400)
    dst.step(51, samples=8)
    assert s.last_epoch == 408 and dst.resumed["overridden"][-1] == ["warmup_steps", 10, 80]


# ------------------------------------------------------------------ refusals
@pytest.mark.parametrize("policy, match", [
    ({"checkpoint": ["step"]}, r"total_steps \(1000 -> 2000\) differ\(s\) but is listed on neither side"),
    ({"current": ["total_steps", "decay_length"]}, "unknown field.s. decay_length; allowed: step, samples, tokens, skipped, "
                                                   "unit, base_lrs, total_steps, warmup_steps, eta_min"),
    ({"current": ["total_steps"], "checkpoint": ["lr"]}, "unknown field.s. lr; allowed"),
    ("checkpoint=step;current=total_steps,unit,warmup", "unknown field.s. warmup; allowed"),
    ("keep_everything", r"on_mismatch must be one of \['raise', 'use_checkpoint', 'use_current'\] or per field"),
])
def test_an_ambiguous_choice_is_refused_naming_the_fields_and_nothing_changes(policy, match):
    src, dst = trained(), fresh()
    before = snapshot(dst)
    with pytest.raises(ResumeChoiceError, match=match) as err:
        restore(dst, src.state_dict(), policy)
    assert "\n" not in str(err.value)
    assert snapshot(dst) == before


def test_a_class_change_a_unit_without_a_clock_and_a_schedule_that_does_not_build_are_refused():
    src = trained(steps=50)
    cases = [
        (LRSchedulerHook(cs.CosineAnnealingLR(make_optimizer(), 2000)), {"current": ["total_steps"]},
         "per-field choices need the same schedule on both sides, but class differs .'CosineAnnealingWarmupLR' in the "
         "checkpoint, 'CosineAnnealingLR' now.; pass 'use_checkpoint' or 'use_current'"),
        (fresh(40), MEGATRON, r"total_steps 1000 -> 40 as a re-plan at step 50: .*pass replan=False \('swap'\)"),
        (fresh(5, warmup_steps=0), {"current": ["total_steps"], "checkpoint": ["warmup_steps"], "replan": False},
         r"the merged schedule \(checkpoint: warmup_steps; current: total_steps\) does not build: .*warmup_steps"),
    ]
    for dst, policy, match in cases:
        before = snapshot(dst)
        with pytest.raises(ResumeChoiceError, match=match):
            restore(dst, src.state_dict(), policy)
        assert snapshot(dst) == before
    early = trained(steps=5)  # inside the warmup: a re-plan is refused there
    dst = fresh()
    before = snapshot(dst)
    with pytest.raises(ResumeChoiceError, match="re-plan at step 5: .*inside the warmup"):
        restore(dst, early.state_dict(), MEGATRON)
    assert snapshot(dst) == before
    counted = cs.CosineAnnealingWarmupLR(make_optimizer(), 1000, warmup_steps=10).counting("samples")
    opt_before = [g["lr"] for g in counted.optimizer.param_groups]
    saved = trained(steps=50).lr_scheduler.state_dict()  # a bare state: no clock to place samples by
    with pytest.raises(ResumeChoiceError, match="unit updates -> samples needs the saved clock"):
        resume(counted, saved, {"current": ["unit"]})
    assert counted.last_epoch == 0 and [g["lr"] for g in counted.optimizer.param_groups] == opt_before


# ------------------------------------------------------------------ the record
def test_the_record_round_trips_through_save_and_load(tmp_path):
    src, dst = trained(), fresh()
    restore(dst, src.state_dict(), MEGATRON)
    saved = read_state(dst.state_dict())
    assert saved.resumed_record() == dst.resumed
    save_booster_state(dst, str(tmp_path))
    assert read_booster_state(str(tmp_path)) == saved
    again = fresh(1000)  # the saved hyperparameters are the constructor's; the new length is the re-plan
    again.load_state_dict(dst.state_dict())
    assert again.resumed == dst.resumed and again.lr_scheduler.replans == [(500, 2000)]
    later = fresh(1000)
    restore(later, dst.state_dict())  # the same schedule: nothing to choose, the saved record is kept
    assert later.resumed == dst.resumed and later.lr_scheduler.get_last_lr() == dst.lr_scheduler.get_last_lr()
    payload = json.loads(dst.state_dict()["colossal_sched"])
    for bad in [[1], {"step": -1}, {"kept": "step"}, {"overridden": [["total_steps", 1]]}, {"what": 1}, {"how": {"a": [[[[[[[[[[[1]]]]]]]]]]]}}]:
        with pytest.raises(CheckpointError, match="resumed|nests"):
            read_state({"colossal_sched": json.dumps({**payload, "resumed": bad})})


def test_inspect_prints_the_clock_and_what_was_kept_and_overridden(tmp_path):
    src, dst = trained(), fresh()
    restore(dst, src.state_dict(), MEGATRON)
    dcp.save({"lr_scheduler": dst}, checkpoint_id=str(tmp_path / "step_00000500"), no_dist=True)
    out = forked.run(CLI + ["inspect", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "clock: samples 4000, tokens 0, skipped 0" in out.stdout
    assert ("resumed at step 500: kept from checkpoint: step, samples, tokens, skipped; overridden by the current run "
            "(re-plan at step 500): total_steps 1000 -> 2000") in out.stdout
    assert "re-planned at step 500 to end at 2000" in out.stdout
