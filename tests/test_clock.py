"""Issue 18, the clock: schedules counting samples or tokens, batch-size ramp-up, skipped updates; agreed on every
rank inside the one sync, held in the checkpoint; at worlds 1, 2 and 4 (dp 4, and dp 2 x tp 2)."""
import json
import warnings

import pytest
import torch

import colossal_sched as cs
from clock_workers import GBS, RAMP, consumed_before, linear_warmup_oracle
from colossal_sched.checkpoint import HOOK_KEY
from colossal_sched.clock import Clock
from colossal_sched.errors import CheckpointError, ScheduleMismatchError
from distributed import run
from hooks import LRSchedulerHook
import clock_workers

BASES = (0.1, 0.2)


def _opt():
    return torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in BASES], lr=0.1)


def _ramp_oracle(n):
    t = consumed_before(n)
    return [linear_warmup_oracle(t, 30 * GBS, 4 * GBS, b) for b in BASES]


def _check_ramp(seen, start=0):
    for n, lrs in enumerate(seen, start):
        assert lrs == pytest.approx(_ramp_oracle(n), rel=1e-15, abs=0), f"update {n}"
        sched = cs.LinearWarmupLR(_opt(), total_steps=30 * GBS, warmup_steps=4 * GBS).counting("samples")
        assert lrs == sched.lr_at(consumed_before(n)), f"update {n}: not bit-exact with lr_at(consumed samples)"


def _skip_oracle(unit, k=5, updates=12):
    """The lrs of a run without the skipped update ``k``: update k + 1 runs again at update k's position."""
    scale = GBS if unit == "samples" else 1
    sched = cs.CosineAnnealingWarmupLR(_opt(), total_steps=20 * scale, warmup_steps=3 * scale)
    positions = [n if n <= k else n - 1 for n in range(updates)]
    return [sched.lr_at(p * scale) for p in positions]


# ------------------------------------------------------------------- world 1
def test_a_schedule_counts_samples_or_tokens_and_the_unit_is_part_of_its_identity():
    s = cs.WarmupStableDecayLR(_opt(), total_steps=1000, warmup_steps=100, decay_steps=200).counting("tokens")
    assert s.unit == "tokens" and "unit='tokens'" in repr(s)
    s.step_to(550)
    assert s.get_last_lr() == cs.WarmupStableDecayLR(_opt(), 1000, 100, 200).lr_at(550)
    with pytest.raises(ValueError, match="counts tokens: step\\(\\) cannot tell"):
        s.step()
    updates = cs.WarmupStableDecayLR(_opt(), total_steps=1000, warmup_steps=100, decay_steps=200)
    assert s.fingerprint() != updates.fingerprint() and s.schedule_spec()["unit"] == "tokens"
    assert "unit" not in updates.state_dict() and "unit" not in updates.schedule_spec()  # states of before stay as they were
    with pytest.raises(ScheduleMismatchError, match="unit: saved='tokens', current='updates'"):
        updates.load_state_dict(s.state_dict())
    rebuilt = cs.ClosedFormLR.from_state(s.state_dict())
    assert rebuilt.unit == "tokens" and rebuilt.last_epoch == 550 and rebuilt.get_last_lr() == s.get_last_lr()
    with pytest.raises(ValueError, match="unit must be one of"):
        cs.CosineAnnealingLR(_opt(), 10).counting("epochs")
    with pytest.raises(ValueError, match="before the first step"):
        updates.step_to(3) or updates.counting("samples")


def test_composed_phases_declare_their_unit_and_mixed_units_are_refused():
    s = cs.ComposedLR(_opt(), 100, [{"type": "warmup", "unit": "samples"}, {"type": "cosine", "unit": "samples"}], [10])
    assert s.unit == "samples" and cs.ClosedFormLR.from_state(s.state_dict()).unit == "samples"
    with pytest.raises(ValueError, match=r"phases mix clock units \['phases\[0\]: samples', 'phases\[1\]: tokens'\]"):
        cs.ComposedLR(_opt(), 100, [{"type": "warmup", "unit": "samples"}, {"type": "cosine", "unit": "tokens"}], [10])
    with pytest.raises(ValueError, match="unit must be 'samples', what the phases declare"):
        s.counting("tokens")


def _drive(sched, updates, report, save_at=None):
    """One process: the hook after every update, told ``report(n, hook)``; the lrs each update ran with."""
    hook = LRSchedulerHook(sched)
    hook.step(0)
    seen, state = [], None
    for n in range(updates):
        seen.append(sched.get_last_lr())
        hook.step(n + 1, **report(n, hook))
        state = hook.state_dict() if n + 1 == save_at else state
    return hook, seen, state


def test_world1_hook_counts_samples_skips_and_resumes_from_its_state():
    sched = cs.LinearWarmupLR(_opt(), total_steps=30 * GBS, warmup_steps=4 * GBS).counting("samples")
    _, seen, state = _drive(sched, 14, lambda n, hook: {"samples": RAMP.batch_size(hook.clock.samples)}, save_at=6)
    _check_ramp(seen)
    assert json.loads(state[HOOK_KEY])["clock"] == {"samples": consumed_before(6), "tokens": 0, "skipped": 0}
    again = LRSchedulerHook(cs.LinearWarmupLR(_opt(), total_steps=30 * GBS, warmup_steps=4 * GBS).counting("samples"))
    again.load_state_dict(state)
    assert again.clock == Clock(samples=consumed_before(6)) and again.global_step == 6
    again.step(6)
    assert again.lr_scheduler.get_last_lr() == seen[6]


def test_world1_skipped_update_repeats_its_lr_and_counts_nothing():
    sched = cs.CosineAnnealingWarmupLR(_opt(), total_steps=20 * GBS, warmup_steps=3 * GBS).counting("samples")
    hook, seen, _ = _drive(sched, 12, lambda n, hook: {"samples": GBS, "skipped": n == 5})
    assert seen == _skip_oracle("samples")
    assert hook.clock == Clock(samples=11 * GBS, skipped=1)


def test_world1_bad_clock_input_is_refused_and_changes_nothing():
    hook = LRSchedulerHook(cs.CosineAnnealingLR(_opt(), 100).counting("samples"))
    hook.step(0, samples=0)
    hook.step(1, samples=3)
    before = (hook.clock, hook.global_step, hook.lr_scheduler.get_last_lr())
    for kwargs, match in [({"samples": -1}, "samples must be an int in \\[0, 2\\*\\*62\\]"),
                          ({"tokens": 2**62 + 1}, "tokens must be an int in \\[0, 2\\*\\*62\\]"),
                          ({"samples": 1.5}, "samples must be an int"), ({"skipped": 1}, "skipped must be True or False")]:
        with pytest.raises(ValueError, match=match):
            hook.step(2, **kwargs)
        assert (hook.clock, hook.global_step, hook.lr_scheduler.get_last_lr()) == before
    with pytest.raises(ValueError, match="repeats the last call"):
        hook.step(1, samples=3)
    hook.clock = Clock(tokens=2**62 - 2)
    with pytest.raises(ValueError, match="tokens: the consumed total would be"):
        hook.step(2, tokens=5)
    with pytest.raises(ValueError, match="clock samples must be an int"):
        Clock.from_state({"samples": -4, "tokens": 0, "skipped": 0})
    good = json.loads(hook.state_dict()[HOOK_KEY])
    for clock, match in [({"samples": "many"}, "clock state must be"), ({}, "clock state must be"),
                         ({"samples": None, "tokens": 0, "skipped": 0}, "clock state must be"),
                         ({"samples": 0, "tokens": 0, "skipped": 0}, "does not give the scheduler's step 3")]:
        with pytest.raises(CheckpointError, match=match):  # never a silent reset of the progress
            hook.load_state_dict({HOOK_KEY: json.dumps({**good, "clock": clock})})
        assert hook.lr_scheduler.last_epoch == 3
    with pytest.raises(ValueError, match="the first call after the hook's construction or a load has no update"):
        LRSchedulerHook(cs.CosineAnnealingLR(_opt(), 100)).step(0, skipped=True)


def test_a_schedule_counting_samples_that_gets_none_warns_once():
    hook = LRSchedulerHook(cs.CosineAnnealingLR(_opt(), 100).counting("samples"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(4):
            hook.step(n, tokens=8)
    assert [str(w.message) for w in caught if "gave no samples=" in str(w.message)] == [
        "CosineAnnealingLR counts samples, but this rank gave no samples= for the update before step 1: its schedule "
        "does not move for it"]


def test_a_batch_that_changes_while_the_schedule_counts_updates_warns_once_naming_samples():
    hook = LRSchedulerHook(cs.CosineAnnealingLR(_opt(), 100))
    hook.step(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n, batch in enumerate([8, 8, 16, 24, 32], 1):
            hook.step(n, samples=batch)
    ramp = [w for w in caught if "counts updates" in str(w.message)]
    assert len(ramp) == 1 and "counting('samples')" in str(ramp[0].message)


# ----------------------------------------------------------- worlds 2 and 4
@pytest.mark.multiprocess
@pytest.mark.timeout(300)
@pytest.mark.parametrize("world,shape", [(2, None), (4, None), (4, (2, 2))], ids=["world2", "world4-dp4", "world4-dp2xtp2"])
def test_the_clock_on_every_rank_in_the_one_sync(tmp_path, world, shape):
    results = run(world, clock_workers.all_scenarios, shape, tmp_path=tmp_path, timeout=280)
    for r, res in enumerate(results):
        ramp = res["ramp"]
        _check_ramp(ramp["seen"])
        assert res["ramp overlap"]["seen"] == ramp["seen"] and res["ramp overlap"]["clock"] == ramp["clock"]
        assert ramp["calls"] == ["all_to_all_single"] * 25, f"rank {r}: one collective per update, no other"
        assert ramp["clock"] == {"samples": consumed_before(24), "tokens": 16 * consumed_before(24), "skipped": 0}
        for unit in ("updates", "samples"):
            assert res[f"skip {unit}"] == _skip_oracle(unit), f"rank {r} {unit}"
            assert res[f"skip {unit} accumulate"] == _skip_oracle(unit), f"rank {r} {unit} with accumulation"
    hostile = [res["hostile"] for res in results]
    last = world - 1
    for name, (kind, words) in {"skipped alone": ("ClockMismatchError", f"ranks [{last}] skipped the update"),
                                "totals differ": ("ClockMismatchError", f"rank {last}: samples 7"),
                                "negative share": ("ValueError", f"ranks [{last}] were given an invalid"),
                                "repeat with samples": ("ValueError", f"ranks [{last}] were given an invalid"),
                                "int64 overflow": ("ClockMismatchError", "tokens: the consumed total would be"),
                                **({"dp sums differ": ("ClockMismatchError", "data-parallel groups consumed different")}
                                   if shape else {})}.items():
        for r, h in enumerate(hostile):
            assert h[name] is not None, f"{name}: rank {r} went on"
            assert h[name][0] == kind and words in h[name][1], f"{name}: rank {r}: {h[name]}"


@pytest.mark.multiprocess
@pytest.mark.timeout(240)
def test_a_resume_on_another_dp_size_continues_the_consumed_samples_bit_exactly(tmp_path):
    saved = run(4, clock_workers.ramp_only, (2, 2), tmp_path=tmp_path / "w4", timeout=220)  # dp 2 x tp 2
    state = saved[0]["ramp"]["saved"]
    assert json.loads(state[HOOK_KEY])["clock"]["samples"] == consumed_before(10)
    resumed = run(2, clock_workers.resume_ramp, None, state, tmp_path=tmp_path / "w2", timeout=100)  # dp 2
    for res in resumed:
        assert res["seen"] == saved[0]["ramp"]["seen"][10:]
        _check_ramp(res["seen"], start=10)


@pytest.mark.multiprocess
@pytest.mark.timeout(120)
def test_grad_scaler_overflow_under_ddp_is_skipped_on_every_rank(tmp_path):
    results = run(2, clock_workers.grad_scaler_ddp, 3, tmp_path=tmp_path)
    sched = cs.CosineAnnealingWarmupLR(_opt(), total_steps=10, warmup_steps=2)
    expected = [sched.lr_at(n if n <= 3 else n - 1)[:1] for n in range(8)]
    for res in results:
        assert res["skips"] == [n == 3 for n in range(8)]
        assert [lrs[:1] for lrs in res["seen"]] == expected
        assert res["clock"] == {"samples": 2 * 2 * 7, "tokens": 0, "skipped": 1}


def test_show_plot_and_build_accept_the_sample_or_token_axis(tmp_path, capsys):
    from colossal_sched.cli import main

    config = tmp_path / "wsd.yaml"
    config.write_text("lr_scheduler:\n  type: WarmupStableDecayLR\n  total_steps: 64000\n  warmup_steps: 640\n"
                      "  decay_steps: 6400\n  unit: samples\n")
    assert main(["show", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["point", "samples", "lr"]
    assert any(line.split()[:3] == ["decay", "start", "57600"] for line in out)
    assert main(["plot", "CosineAnnealingWarmupLR", "--total-steps", "1000", "--param", "warmup_steps=100",
                 "--unit", "tokens", "--out", str(tmp_path / "lr.png")]) == 0
    assert "over 1000 tokens" in capsys.readouterr().out
    built = cs.build_lr_scheduler({"type": "CosineAnnealingLR", "total_steps": 10, "unit": "tokens"}, _opt())
    assert built.unit == "tokens"
    with pytest.raises(ValueError, match="unit must be one of"):
        cs.build_lr_scheduler({"type": "CosineAnnealingLR", "total_steps": 10, "unit": "epochs"}, _opt())


@pytest.mark.multiprocess
@pytest.mark.timeout(200)
@pytest.mark.parametrize("world", [2, 4])
def test_per_field_resume_and_tensor_values_on_every_rank(tmp_path, world):
    from colossal_sched.checkpoint import restore
    from colossal_sched.resume_choice import ResumeChoice

    saved = LRSchedulerHook(cs.CosineAnnealingWarmupLR(_opt(), 1000, 100))
    for n in range(501):
        saved.step(n)
    state = saved.state_dict()
    alone = LRSchedulerHook(cs.CosineAnnealingWarmupLR(_opt(), 2000, 100))  # world 1: the oracle
    restore(alone, state, ResumeChoice(checkpoint=["step"], current=["total_steps"]), logger=lambda _: None)
    expected = [alone.step(n) for n in range(500, 505)]
    assert expected[0] == saved.lr_scheduler.lr_at(500)  # the re-plan keeps the saved step's lr
    results = run(world, clock_workers.resume_choice_and_tensors, state, tmp_path=tmp_path, timeout=180)
    for r, res in enumerate(results):
        assert res["resumed"] == expected, f"rank {r}"
        assert res["refused"] is not None and res["refused"][0] == "ScheduleMismatchError", f"rank {r}: {res['refused']}"
        assert res["tensors"] == results[0]["tensors"]
        assert res["one refused"] is not None, f"rank {r} went on"
        assert ("ScheduleMismatchError" if r == world - 1 else "RuntimeError") == res["one refused"][0], res["one refused"]
        assert f"ranks [{world - 1}] failed before the sync" in res["one refused"][1] or r == world - 1
    opt = torch.optim.AdamW([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": torch.tensor(lr),
                              "weight_decay": torch.tensor(0.1)} for lr in (0.1, 0.2)])  # as each rank's, without a hook
    sched = cs.CosineAnnealingWarmupLR(opt, 20, 2).add_schedules(cs.CosineAnnealingLR.for_key("weight_decay", opt, 20, eta_min=0.01))
    for n, row in enumerate(results[0]["tensors"]):
        sched.step_to(n)
        assert row == [[float(g["lr"]), float(g["weight_decay"])] for g in opt.param_groups], n
