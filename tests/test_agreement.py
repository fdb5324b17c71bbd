"""Issue #8: cross-rank agreement that cannot be fooled, on real gloo worlds of 2 and 4 ranks.

Each world runs every scenario of ``agreement_workers`` in the same processes (one launch per world);
``distributed.run`` fails the test if any rank outlives its deadline (a hang), and every refusal is
checked to reach every rank, with the same error type, well within the hook's timeout.
"""
import pytest

import agreement_workers as aw
from distributed import free_port, run

pytestmark = [pytest.mark.multiprocess, pytest.mark.xdist_group("agreement")]  # one world per size for all

NAMES = list(aw.SCENARIOS)


@pytest.fixture(scope="module", params=[2, 4], ids=["world2", "world4"])
def world(request, tmp_path_factory):
    size = request.param
    results = run(size, aw.suite, NAMES, free_port(), tmp_path=tmp_path_factory.mktemp(f"w{size}"), timeout=170,
                  dist_timeout=60)
    return size, results


def by_rank(world, name):
    size, results = world
    return [res[name] for res in results]


def assert_failed_before_the_sync(world, name, rank, why):
    """Every rank raises RuntimeError naming ``rank``, whose own message says ``why``."""
    outs = by_rank(world, name)
    assert_everyone_raises(outs, "RuntimeError", f"ranks [{rank}] failed before the sync", same_message=False)
    assert why in outs[rank]["error"], outs[rank]
    return outs


def assert_everyone_raises(outs, error_type, *fragments, same_message=True):
    for rank, out in enumerate(outs):
        assert out["type"] == error_type, f"rank {rank}: {out}"
        for fragment in fragments:
            assert fragment in out["error"], f"rank {rank}: {fragment!r} not in {out['error']!r}"
        assert out["seconds"] < aw.TIMEOUT, f"rank {rank} took {out['seconds']:.1f}s to refuse"
    if same_message:
        assert len({out["error"] for out in outs}) == 1, "every rank raises the same message"


@pytest.mark.timeout(200)
@pytest.mark.parametrize("equal_lrs", [True, False], ids=["equal_lrs", "different_lrs"])
def test_a_rank_at_another_step_is_fixed_to_the_source_step(world, equal_lrs):
    outs = by_rank(world, f"step_{'equal' if equal_lrs else 'differ'}_fix")
    src = outs[0]
    for rank, out in enumerate(outs):
        assert out["error"] is None, out
        assert out["global_step"] == out["last_epoch"] == 4, f"rank {rank}: {out}"
        assert out["lrs"] == src["lrs"]
        assert out["lrs"] == out["lrs_before_repeat"] and out["repeat_calls"] == [], "a repeat call changes nothing"
        assert out["disagreements"] == 1
        assert out["last"]["ranks"] == [1] and out["last"]["steps"] == {"0": 4, "1": 5 if equal_lrs else 9}
        assert out["caught"] == []
    assert outs[1]["fixes"] == 1 and src["fixes"] == 0


@pytest.mark.timeout(200)
def test_a_rank_whose_counter_runs_ahead_all_along_is_fixed_at_every_sync(world):
    outs = by_rank(world, "persistent_offset")
    for out in outs:
        assert out["error"] is None, out
        assert [(g, e) for g, e, _ in out["held"]] == [(n, n) for n in range(6)]
        assert [lrs for _, _, lrs in out["held"]] == [lrs for _, _, lrs in outs[0]["held"]]
    assert outs[1]["fixes"] == 6 and outs[0]["fixes"] == 0


@pytest.mark.timeout(200)
@pytest.mark.parametrize("equal_lrs", [True, False], ids=["equal_lrs", "different_lrs"])
def test_warn_fixes_and_names_rank_both_steps_and_both_lrs(world, equal_lrs):
    outs = by_rank(world, f"step_{'equal' if equal_lrs else 'differ'}_warn")
    mine = 5 if equal_lrs else 9
    for rank, out in enumerate(outs):
        assert out["global_step"] == out["last_epoch"] == 4
        assert out["lrs"] == outs[0]["lrs"]
    (msg,) = outs[1]["caught"]
    assert "rank 1" in msg and f"step {mine}" in msg and "step 4" in msg and "source rank 0" in msg
    assert str(outs[0]["lrs"][0])[:6] in msg
    assert outs[1]["warn_count"] == 1 and outs[0]["caught"] == []
    assert outs[1]["categories"] == ["LRDivergenceWarning"]  # a UserWarning users can filter by category


@pytest.mark.timeout(200)
@pytest.mark.parametrize("equal_lrs", [True, False], ids=["equal_lrs", "different_lrs"])
def test_raise_reaches_every_rank_and_names_every_disagreeing_rank(world, equal_lrs):
    outs = by_rank(world, f"step_{'equal' if equal_lrs else 'differ'}_raise")
    assert_everyone_raises(outs, "LRDivergenceError", "ranks [1]", f"rank 1 at step {5 if equal_lrs else 9}",
                           "source rank 0 (step 4")


@pytest.mark.timeout(200)
@pytest.mark.parametrize("name", ["skip_every1", "skip_every3"])
def test_a_skipped_call_is_a_sequence_error_on_every_rank(world, name):
    assert_everyone_raises(by_rank(world, name), "SyncSequenceError", "rank 1 is behind by 1 sync(s)")


@pytest.mark.timeout(200)
def test_a_skipped_call_on_the_source_names_the_source(world):
    size, _ = world
    outs = by_rank(world, "source_skips")
    if size == 2:  # one against one: the source's view is the reference
        assert_everyone_raises(outs, "SyncSequenceError", "rank 1 is ahead by 1 sync(s)")
    else:  # the majority moved by one step: rank 0 is the one behind
        assert_everyone_raises(outs, "SyncSequenceError", "rank 0 is behind by 1 sync(s)")


@pytest.mark.timeout(200)
@pytest.mark.parametrize("what,field", [("class", "class"), ("eta_min", "eta_min"), ("total_steps", "total_steps"),
                                        ("base_lr", "base_lr[#0]")])
@pytest.mark.parametrize("every", [1, 3])
def test_a_different_schedule_is_refused_on_every_rank_whatever_on_divergence(world, what, field, every):
    outs = by_rank(world, f"schedule_{what}_every{every}")
    assert_everyone_raises(outs, "ScheduleMismatchError", "ranks [1]", f"rank 1 {field}", "source rank 0")


@pytest.mark.timeout(200)
def test_a_rank_that_swaps_its_schedule_after_construction_is_refused(world):
    assert_everyone_raises(by_rank(world, "swapped_by_restore"), "ScheduleMismatchError", "rank 1 class",
                           "CosineAnnealingWarmupLR", "CosineAnnealingLR")


@pytest.mark.timeout(200)
def test_a_hook_built_before_the_process_group_refuses_different_schedules_at_its_first_step(world):
    size, _ = world
    outs = [out["different"] for out in by_rank(world, "late_group")]
    ranks = list(range(1, size))
    assert_everyone_raises(outs, "ScheduleMismatchError", f"ranks {ranks}", "total_steps")


@pytest.mark.timeout(200)
def test_an_invalid_first_step_before_the_hook_connected_is_refused_on_every_rank(world):
    outs = [out["bad_first_step"] for out in by_rank(world, "late_group")]
    assert_everyone_raises(outs, "ValueError", "ranks [1] were given an invalid global_step", same_message=False)


@pytest.mark.timeout(200)
def test_duplicate_group_names_are_refused_on_every_rank(world):
    assert_everyone_raises(by_rank(world, "duplicate_names"), "LayoutMismatchError", "rank 1", "duplicate", "'decay'")


def test_duplicate_or_empty_group_names_are_refused_in_one_process():
    from hooks import LRSchedulerHook

    import colossal_sched as cs

    with pytest.raises(cs.LayoutMismatchError, match=r"duplicate param group name\(s\) \['a'\]"):
        LRSchedulerHook(cs.CosineAnnealingLR(aw.optimizer(names=["a", "a"]), 10))
    with pytest.raises(cs.LayoutMismatchError, match="empty"):
        LRSchedulerHook(cs.CosineAnnealingLR(aw.optimizer(names=["", "b"]), 10))


@pytest.mark.timeout(200)
def test_steps_up_to_2_62_travel_exactly_and_larger_ones_are_refused(world):
    outs = by_rank(world, "huge_steps")
    for out in outs:
        assert out["error"] is None, out
        assert out["global_step"] == 2**62 and out["last"] is None and out["syncs"] == 3  # the refusal is a sync too
        assert "global_step" in out["refused"] and "2**62" in out["refused"]
    outs = by_rank(world, "huge_step_mismatch")  # 2**60 and 2**60 + 1 are one float64 apart from nothing
    assert_everyone_raises(outs, "LRDivergenceError", f"rank 1 at step {2**60 + 1}", f"step {2**60}")


@pytest.mark.timeout(200)
def test_a_step_refused_on_one_rank_is_refused_on_every_rank(world):
    outs = by_rank(world, "bad_step_on_one_rank")
    assert_everyone_raises(outs, "ValueError", "ranks [1] were given an invalid global_step", same_message=False)
    assert "global_step must be an int" in outs[1]["error"]


@pytest.mark.timeout(200)
def test_a_fix_is_counted_everywhere_and_logged_on_rank_0(world):
    outs = by_rank(world, "logged_disagreement")
    assert outs[0]["logged"] and outs[0]["logged"][0]["sync/first_off_rank"] == 1.0
    assert outs[0]["logged"][0]["sync/first_off_step"] == 1.0 and outs[0]["logged"][0]["sync/source_step"] == 0.0
    for rank, out in enumerate(outs):
        assert out["disagreements"] == 1 and out["last"]["ranks"] == [1]
        if rank:
            assert out["logged"] == []
    assert outs[1]["fixes"] == 1 and outs[0]["fixes"] == 0


@pytest.mark.timeout(200)
def test_a_replan_refused_on_one_rank_is_refused_on_every_rank_and_changes_no_schedule(world):
    outs = by_rank(world, "replan_refused_by_one")
    assert_everyone_raises(outs, "ReplanError", "ranks [1] refused the re-plan", same_message=False)
    assert "total_steps must be an int > at_step=4" in outs[1]["error"]  # the refusing rank also says why
    assert all(out["unchanged"] for out in outs), outs


def test_one_step_validator_for_the_hook_on_every_call_including_repeats():
    import numpy as np
    import torch

    import colossal_sched as cs
    from hooks import LRSchedulerHook

    hook = LRSchedulerHook(cs.CosineAnnealingLR(aw.optimizer(), 10))
    hook.step(np.int64(7))
    assert type(hook.global_step) is int and hook.global_step == 7
    hook.step(torch.tensor(7))
    assert type(hook.global_step) is int
    for bad in (7.0, False, True, float("nan"), -1, 2**62 + 1, torch.tensor([7]), "7"):
        with pytest.raises((TypeError, ValueError), match="global_step"):
            hook.step(bad)
    assert hook.global_step == 7
    import json

    json.dumps(hook.state_dict())  # plain ints only


def test_timeout_must_be_at_least_a_millisecond():
    import colossal_sched as cs
    from hooks import LRSchedulerHook

    with pytest.raises(ValueError, match="timeout"):
        LRSchedulerHook(cs.CosineAnnealingLR(aw.optimizer(), 10), timeout=0.0004)


@pytest.mark.timeout(200)
def test_pipeline_stages_holding_different_named_groups_are_synced_and_fixed(world):
    size, _ = world
    outs = by_rank(world, "pipeline_stages")
    for rank, out in enumerate(outs):
        assert out["error"] is None, out
        assert out["layout"] == ["embed", "block0", "block1", "head"]
        assert out["global_step"] == out["last_epoch"] == 4, f"rank {rank}: {out}"
        assert out["lrs"] == out["expected"], f"rank {rank}: the closed form at the source's step"
        assert out["last"]["ranks"] == [1] and out["last"]["steps"] == {"0": 4, "1": 9}
    assert outs[1]["fixes"] == 1 and outs[0]["fixes"] == 0


@pytest.mark.timeout(200)
def test_a_stage_group_with_another_base_lr_than_its_first_holder_is_refused_on_every_rank(world):
    size, _ = world
    outs = by_rank(world, "pipeline_base_mismatch")
    if size == 2:  # each group has one holder: nothing to compare
        assert all(out["error"] is None for out in outs)
    else:
        assert_everyone_raises(outs, "ScheduleMismatchError", f"rank {size - 1} base_lr[head] (reference rank 1)")


@pytest.mark.timeout(200)
def test_param_groups_changed_on_one_rank_are_refused_on_every_rank(world):
    assert_everyone_raises(by_rank(world, "groups_changed"), "LayoutMismatchError", "ranks [1]",
                           "param groups changed")


@pytest.mark.timeout(200)
@pytest.mark.parametrize("what,why", [("base_lrs", "has 3 lrs to write but the optimizer now has 2 param groups"),
                                      ("fingerprint", "reading this rank's schedule and lrs for the sync failed: RuntimeError")])
def test_a_rank_whose_row_cannot_be_written_is_refused_on_every_rank(world, what, why):
    assert_failed_before_the_sync(world, f"unreadable_{what}", 1, why)


@pytest.mark.timeout(200)
def test_the_same_named_groups_in_another_order_sync_quietly_and_are_fixed_by_name(world):
    for rank, out in enumerate(by_rank(world, "swapped_order")):
        assert out["type"] is None, f"rank {rank}: {out}"
        assert out["quiet"] == 0
        assert out["global_step"] == 5 and out["lrs"] == out["expected"], f"rank {rank}: {out}"
        assert out["fixes"] == (1 if rank == 1 else 0)


@pytest.mark.timeout(200)
@pytest.mark.parametrize("value", ["nan", "inf"])
@pytest.mark.parametrize("mode", ["fix", "warn"])
def test_an_invalid_value_to_adopt_is_refused_on_every_rank_nan_included(world, value, mode):
    # world 2: the source's value of group 'a'; world 4: the reference holder's value of 'x' (the source lacks it)
    size, _ = world
    assert_everyone_raises(by_rank(world, f"reference_{value}_{mode}"), "InvalidLRError",
                           f"values to adopt lr[{'x' if size > 2 else 'a'}]={value}",
                           "are not a valid lr/momentum, so no rank adopts them")


@pytest.mark.timeout(200)
@pytest.mark.parametrize("sign", ["positive", "negative"])
def test_any_int64_fingerprint_is_carried_and_one_a_row_cannot_carry_is_refused_on_every_rank(world, sign):
    assert_failed_before_the_sync(world, f"fingerprint_{sign}", 1, "fingerprint() must return an int64, got 9223372036854775808")


@pytest.mark.timeout(200)
@pytest.mark.parametrize("case", ["plain", "strict"])
def test_a_failing_log_fn_on_rank_0_warns_there_and_every_rank_raises_at_the_next_sync(world, case):
    outs = assert_failed_before_the_sync(world, f"log_fn_fails_{case}", 0, "writer/log_fn failed at step 1: KeyError")
    assert [len(out["warned"]) for out in outs] == [0 if case == "strict" else 1] + [0] * (len(outs) - 1)


@pytest.mark.timeout(200)
def test_refusals_for_different_reasons_in_one_sync_are_all_named(world):
    outs = by_rank(world, "log_fn_fails_with_bad_step")
    assert_everyone_raises(outs, "RuntimeError", "ranks [0] failed before the sync; ranks [1] were given an invalid "
                           "global_step, so no rank goes on", same_message=False)


@pytest.mark.timeout(200)
def test_a_replan_that_fails_otherwise_on_one_rank_is_refused_on_every_rank(world):
    outs = by_rank(world, "replan_fails_on_one")
    assert_everyone_raises(outs, "ReplanError", "ranks [1] refused the re-plan, so no rank applies it", same_message=False)
    assert "replan backend unavailable" in outs[1]["error"]
    assert all(out["unchanged"] for out in outs)


@pytest.mark.timeout(200)
def test_warn_on_a_rank_that_turns_warnings_into_errors_raises_on_every_rank(world):
    assert_everyone_raises(by_rank(world, "warn_is_error"), "LRDivergenceError", "ranks [1] turn warnings into errors")


@pytest.mark.timeout(200)
def test_lambda_functions_that_differ_are_caught_by_the_lr_check_and_fixed(world):
    outs = by_rank(world, "lambda_differs")
    for out in outs:
        assert out["error"] is None, out
        assert out["lrs"] == outs[0]["lrs"]
        assert out["last"]["ranks"] == [1]
    assert outs[1]["fixes"] == 1


@pytest.mark.timeout(200)
def test_overlap_settles_before_the_optimizer_step_so_every_update_uses_the_agreed_lr(world):
    outs = by_rank(world, "overlap_fix")
    for rank, out in enumerate(outs):
        assert out["error"] is None, out
        assert out["syncs"] == 3, "one collective per sync"
        assert out["global_step"] == 2
        for used, expected in zip(out["used"], out["expected"]):  # what each update really applied
            assert used == pytest.approx(expected, rel=1e-6), f"rank {rank}: {out}"
    assert outs[1]["fixes"] == 3 and outs[0]["fixes"] == 0
    assert outs[1]["returned"][0] != outs[0]["returned"][0], "step() returns the rank's own lrs before the verdict"


@pytest.mark.timeout(200)
def test_overlap_refusals_reach_every_rank_from_the_optimizer_step(world):
    assert_everyone_raises(by_rank(world, "overlap_skip"), "SyncSequenceError", "rank 1 is behind by 1 sync(s)")


@pytest.mark.timeout(200)
@pytest.mark.parametrize("option,detail", [("on_divergence", "on_divergence: source='fix', rank='raise'"),
                                           ("sync_every", "sync_every: source=1, rank=2")])
def test_hooks_configured_differently_are_refused_on_every_rank_at_connection(world, option, detail):
    assert_everyone_raises(by_rank(world, f"options_{option}"), "ScheduleMismatchError", f"rank 1 {detail}")


@pytest.mark.timeout(200)
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_warning_filter_on_one_rank_is_foreseen_and_every_rank_raises(world, when):
    assert_everyone_raises(by_rank(world, f"warn_filtered_{when}"), "LRDivergenceError",
                           "ranks [1] turn warnings into errors")


@pytest.mark.timeout(200)
def test_a_warning_filter_the_probe_cannot_foresee_is_refused_on_every_rank_at_the_next_sync(world):
    assert_everyone_raises(by_rank(world, "warn_filtered_exact"), "LRDivergenceError",
                           "ranks [1] turned the divergence warning of their previous sync into an error",
                           same_message=False)


@pytest.mark.timeout(200)
def test_a_group_the_source_does_not_hold_takes_its_reference_holders_value(world):
    size, _ = world
    outs = by_rank(world, "pipeline_holder_reference")
    for out in outs:
        assert out["error"] is None, out
    if size > 2:
        assert outs[size - 1]["lrs"]["head"] == outs[1]["lrs"]["head"] == 0.2 * 0.8**3
        assert outs[size - 1]["fixes"] == 1 and outs[0]["last"]["ranks"] == [size - 1]


@pytest.mark.timeout(200)
@pytest.mark.parametrize("case", ["names_int_and_str", "names_like_unnamed_key"])
def test_names_equal_as_keys_are_duplicates(world, case):
    assert_everyone_raises(by_rank(world, case), "LayoutMismatchError", "duplicate param group name(s)",
                           same_message=False)


@pytest.mark.timeout(200)
@pytest.mark.parametrize("name,syncs,every", [("sync_every_offset", 3, 3), ("behind_one", 6, 1)],
                         ids=["ahead-sync_every3", "behind-sync_every1"])
def test_a_counter_ahead_or_behind_is_fixed_at_every_sync_and_keeps_pairing(world, name, syncs, every):
    """sync_every pairs syncs by call, so a rank at another step is fixed, never timed out; a counter one behind
    (its next step is the one a fix left it holding) is fixed at every sync as one ahead is."""
    outs = by_rank(world, name)
    for out in outs:
        assert out["error"] is None, out
        assert out["syncs"] == syncs
    for n in range(0, len(outs[0]["held"]), every):  # the sync calls: rank 1 holds the source's step and lrs
        assert outs[1]["held"][n] == outs[0]["held"][n]
    assert outs[1]["fixes"] == syncs and outs[0]["fixes"] == 0


@pytest.mark.timeout(200)
def test_re_plans_that_differ_are_refused_and_rolled_back_on_every_rank(world):
    outs = by_rank(world, "replan_differs")
    assert_everyone_raises(outs, "ScheduleMismatchError", "rank 1 replans: source=[[4, 70]], rank=[[4, 80]]")
    assert all(out["unchanged"] for out in outs)


@pytest.mark.timeout(200)
def test_a_re_plan_on_a_rank_fixed_at_every_sync_lets_training_go_on(world):
    outs = by_rank(world, "replan_while_fixed")
    for out in outs:
        assert out["error"] is None, out
        assert (out["global_step"], out["lrs"], out["total"]) == (outs[0]["global_step"], outs[0]["lrs"], 80)
