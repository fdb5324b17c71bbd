"""Issue #11: launch_scripts/train.py as a newcomer runs it: plain python (world 1) or torchrun,
bad values refused on one line with status 2 (by rank 0 only), rank-0-only messages, no warnings."""
import os
import subprocess
import sys

import pytest

import forked
from torchrun import ROOT, closed_form, command, lrs_by_step, read_log, run_job

TRAIN = os.path.join(ROOT, "launch_scripts", "train.py")
SMALL = ["--total-steps", "8", "--warmup-steps", "2", "--log-every", "4", "--layers", "2"]


def plain(*args, timeout=300, runner=subprocess.run):
    """``python launch_scripts/train.py ...``: no torchrun, one process (``forked.run``: one forked from the
    session's forkserver, for tests that need no fresh interpreter)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    return runner([sys.executable, TRAIN, *map(str, args)], cwd=ROOT, env={**env, "OMP_NUM_THREADS": "1"},
                  capture_output=True, text=True, timeout=timeout)


def torchrun(nproc, *args, timeout=300):
    """torchrun as a user runs it, warnings not silenced."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    return run_job(command(nproc, *args), {**env, "OMP_NUM_THREADS": "1"}, timeout)


@pytest.mark.parametrize("args,needle", [
    (["--warmup-steps", "20", "--total-steps", "10"], "warmup_steps must be an int in [0, 9]"),
    (["--dp", "3"], "--dp 3 x --pp 1 x --tp 1 = 3 must equal the world size 1"),
    (["--tp", "2"], "--dp auto: the world size 1 (the number of processes: 1 without torchrun) does not divide by "
                    "--pp 1 x --tp 2 = 2; pass --dp, --pp and --tp whose product is 1"),
    (["--scheduler-arg", "oops"], "--scheduler-arg must be KEY=VALUE"),
    (["--scheduler-arg", "eta_min=abc"], "eta_min"),
    (["--scheduler-arg", "warmup_step=3"], "warmup_step"),
    (["--scheduler-arg", "total_steps=5"], "--scheduler-arg total_steps=5: give it with --total-steps"),
    (["--scheduler-arg", "warmup_steps=2", "--warmup-steps", "3"], "give it with --warmup-steps"),
    (["--scheduler", "CosineAnnealingLR", "--warmup-steps", "3"], "CosineAnnealingLR takes no warmup_steps"),
    (["--stop-at", "0"], "--stop-at must be an int in [1, 60]"),
    (["--stop-at", "61"], "--stop-at"),
    (["--save-every", "-1", "--ckpt-dir", "unused"], "--save-every must be an int >= 0"),
    (["--scheduler", "LambdaLR"], "invalid choice: 'LambdaLR'"),
    (["--scheduler", "MultiplicativeLR"], "invalid choice: 'MultiplicativeLR'"),
    (["--lr", "nan"], "--lr must be a finite number > 0"),
    (["--sync-every", "0"], "--sync-every must be an int >= 1"),
    (["--rampup-batch-size", "3", "2", "100"], "--rampup-batch-size 3 2 100: increment must divide global_batch_size - "
                                               "start = 8 - 3 = 5"),
    (["--rampup-batch-size", "0", "2", "100"], "--rampup-batch-size 0 2 100: start must be"),
    (["--clock", "samples", "--sync-every", "2"], "--clock samples needs --sync-every 1"),
    (["--rampup-batch-size", "2", "2", "8", "--sync-every", "2"], "--rampup-batch-size 2 2 8: needs --sync-every 1"),
    (["--clock", "tokens", "--replan", "3:90"], "--replan counts updates: it needs --clock updates"),
    (["--clock", "samples", "--stop-at", "9"], "--stop-at must be an int in [1, 8]"),  # 60 samples: 8 updates of 8
])
def test_bad_values_are_one_line_and_status_2(args, needle):
    out = plain(*args, runner=forked.run)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert needle in out.stderr and out.stderr.startswith("train.py: error: "), out.stderr
    assert out.stdout == ""


def test_help_offers_no_lambda_schedulers_and_no_test_only_flags():
    out = plain("--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    for absent in ("LambdaLR", "MultiplicativeLR", "--step-delay", "--kill-during-save-at"):
        assert absent not in text, absent
    for flag in ("--log-every", "--sync-every", "--backend", "--batch", "--seq", "--vocab", "--dim", "--heads",
                 "--layers", "--microbatches"):
        assert flag in text


def test_plain_python_runs_one_process_and_names_the_next_updates_lr(tmp_path):
    ckpt = tmp_path / "ckpt"
    out = plain(*SMALL, "--ckpt-dir", ckpt, "--save-every", "4")
    assert out.returncode == 0, out.stderr
    assert "done: 8 updates; next update's lr decay=0.000000e+00 no_decay=0.000000e+00" in out.stdout
    assert sorted(os.listdir(ckpt))[-1] == "step_00000008"
    assert "Warning" not in out.stderr, out.stderr


@pytest.mark.multiprocess
@pytest.mark.timeout(300)
def test_torchrun_refusal_is_printed_by_rank_0_only():
    out = torchrun(2, "--dp", "2", *SMALL, "--warmup-steps", "9")
    assert out.returncode != 0
    lines = [line for line in (out.stdout + out.stderr).splitlines() if "train.py: error:" in line]
    assert len(lines) == 1 and "warmup_steps must be an int in [0, 7]" in lines[0], out.stderr[-2000:]
    assert "Traceback (most recent call last):\n  File \"" + TRAIN not in out.stderr


@pytest.mark.multiprocess
@pytest.mark.timeout(300)
def test_the_refusal_is_printed_when_rank_0_refuses_last():
    """torchrun stops every worker as soon as one exits: the other ranks exit only once rank 0 has printed."""
    late = [sys.executable, *command(2)[1:-1], os.path.join(ROOT, "tests", "late_rank0.py"), "--dp", "2", *SMALL,
            "--warmup-steps", "9"]
    out = run_job(late, {**os.environ, "OMP_NUM_THREADS": "1"}, timeout=240)
    assert out.returncode != 0
    lines = [line for line in (out.stdout + out.stderr).splitlines() if "error:" in line and "warmup_steps" in line]
    assert len(lines) == 1 and "warmup_steps must be an int in [0, 7]" in lines[0], out.stderr[-2000:]


@pytest.mark.multiprocess
@pytest.mark.timeout(420)
def test_resume_mismatch_names_the_flag_and_messages_come_from_rank_0_only(tmp_path):
    """FSDP2 (dp2: --dp auto on 2 ranks), tensor (tp2) and pipeline (pp2) runs print no warning; a changed schedule names
    --on-mismatch once; the choice is logged once."""
    ckpt = str(tmp_path / "ckpt")
    first = torchrun(2, *SMALL, "--ckpt-dir", ckpt, "--save-every", "4", "--stop-at", "4")  # --dp auto: 2
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Warning" not in first.stderr and "warn(" not in first.stderr, first.stderr[-3000:]
    refused = torchrun(2, "--dp", "1", "--tp", "2", *SMALL[2:], "--total-steps", "10", "--ckpt-dir", ckpt)
    assert refused.returncode != 0
    errors = [line for line in refused.stderr.splitlines() if "saved scheduler state differs" in line]
    assert len(errors) == 1 and "--on-mismatch use_checkpoint or --on-mismatch use_current" in errors[0]
    assert "on_mismatch=" not in refused.stderr
    chosen = torchrun(2, "--dp", "1", "--pp", "2", *SMALL[2:], "--total-steps", "10", "--ckpt-dir", ckpt,
                      "--on-mismatch", "use_current")
    assert chosen.returncode == 0, chosen.stderr[-3000:]
    for out in (refused, chosen):
        assert "Warning" not in out.stderr and "warn(" not in out.stderr, out.stderr[-3000:]
    text = chosen.stdout + chosen.stderr
    assert text.count("keeping the current schedule") == 1
    assert text.count("resumed from") == 1 and "next update's lr decay=" in text


def test_resume_with_another_clock_is_refused(tmp_path):
    ckpt = tmp_path / "ckpt"
    first = plain(*SMALL, "--clock", "samples", "--total-steps", "64", "--ckpt-dir", ckpt, "--save-every", "4",
                  "--stop-at", "4", runner=forked.run)
    assert first.returncode == 0, first.stderr
    again = plain(*SMALL, "--ckpt-dir", ckpt, "--on-mismatch", "use_current", runner=forked.run)
    assert again.returncode == 2
    assert again.stderr.splitlines()[-1].endswith("the checkpoint's schedule counts samples, this run --clock updates; "
                                                  "resume with --clock samples"), again.stderr


RAMP = ["--clock", "samples", "--total-steps", 120, "--warmup-steps", 12, "--layers", 2, "--log-every", 0, "--batch", 4]


@pytest.mark.multiprocess
@pytest.mark.timeout(420)
def test_samples_clock_under_a_batch_ramp_follows_the_closed_form_and_resumes_on_it(tmp_path):
    """dp 2, global batch 2, 4, 6, then 8 (--batch 4 x --dp 2) from 8, 16, 24 samples: the lr at update n is the
    schedule's at the samples consumed before it; a resume from update 8 continues the curve exactly."""
    from colossal_sched.ramp import BatchRamp

    ckpt, log = tmp_path / "ckpt", tmp_path / "lr.jsonl"
    ramp = BatchRamp(2, 2, 24, 8)
    updates = ramp.updates_to(120)
    consumed = {n: ramp.samples_after(n) for n in range(updates)}
    oracle = closed_form(*RAMP[:-2], steps=sorted(set(consumed.values())))
    args = [*RAMP, "--rampup-batch-size", 2, 2, 24, "--ckpt-dir", ckpt, "--save-every", 4, "--lr-log", log]
    first = torchrun(2, *args, "--stop-at", 10)
    assert first.returncode == 0, first.stderr[-3000:]
    before = lrs_by_step(read_log(log))
    resumed = torchrun(2, *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout and "step_00000008" in resumed.stdout
    assert f"done: {updates} updates" in resumed.stdout
    rows = read_log(log)
    after = lrs_by_step(rows[sum(len(v) for v in before.values()):])
    assert sorted(before) == list(range(10)) and sorted(after) == list(range(8, updates))
    for part in (before, after):
        for n, per_rank in part.items():
            assert sorted(per_rank) == [0, 1], n
            for rank, lr in per_rank.items():
                assert lr == oracle[consumed[n]], f"rank {rank} update {n} at {consumed[n]} samples"
    assert before[8] == after[8] and before[9] == after[9]  # updates 8, 9 done twice: the same lrs
    assert oracle[consumed[3]] < oracle[consumed[5]]  # warming up over the ramp: the curve moves by samples


def test_wd_schedule_follows_megatrons_start_to_end_weight_decay_beside_the_lr(tmp_path):
    import math

    log = tmp_path / "lr.jsonl"
    run = plain(*SMALL, "--total-steps", "16", "--wd-schedule", "cosine", "--end-wd", "0.001", "--lr-log", log,
                "--ckpt-dir", tmp_path / "ckpt", "--save-every", "8", runner=forked.run)
    assert run.returncode == 0, run.stderr
    rows = read_log(log)
    oracle = closed_form(*SMALL, "--total-steps", "16", "--wd-schedule", "cosine", "--end-wd", "0.001", steps=range(16))
    assert [r["step"] for r in rows] == list(range(16))
    for r in rows:  # decay group: Megatron's cosine from 0.01 to 0.001; the no-decay group stays at 0
        t = r["step"]
        assert r["wd"][0] == pytest.approx(0.001 + 0.5 * (math.cos(math.pi * t / 16) + 1) * (0.01 - 0.001), rel=1e-12)
        assert r["wd"][1] == 0.0 and r["lr"] == oracle[t]
    bad = plain(*SMALL, "--end-wd", "0.001", runner=forked.run)
    assert bad.returncode == 2 and "--end-wd 0.001: give a weight decay >= 0 together with --wd-schedule" in bad.stderr
