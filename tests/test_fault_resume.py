"""Issue #4: real torchrun jobs, SIGKILLed mid-run or mid-save, resumed on 2 and 8 ranks: the lr of
every later update equals the uninterrupted run's, exactly, on every rank.

Issue #9: the kills happen at fault points (launch_scripts/faults.py), not after sleeps: every rank pauses
before update 17 and the test kills the job once all have said so; rank 0 dies after writing the shards of
checkpoint 15 and before publishing it."""
import hashlib
import os
import shutil

import pytest

from colossal_sched.checkpoint import latest_checkpoint
from torchrun import closed_form, kill_job, lrs_by_step, read_log, start, train, wait_for_pause

pytestmark = [pytest.mark.multiprocess, pytest.mark.xdist_group("fault_resume")]  # one killed job for all

TOTAL = 30
COMMON = ["--total-steps", TOTAL, "--warmup-steps", 4, "--scheduler", "CosineAnnealingWarmupLR",
          "--scheduler-arg", "eta_min=1e-5", "--save-every", 5, "--log-every", 0]
LAYOUTS = {2: ["--dp", 1, "--pp", 2, "--tp", 1], 4: ["--dp", 2, "--pp", 1, "--tp", 2], 8: ["--dp", 2, "--pp", 2, "--tp", 2]}


#: every update's lr in an uninterrupted run: the closed form of the job's schedule (``torchrun.closed_form``)
UNINTERRUPTED = closed_form(*COMMON, steps=range(TOTAL))


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A 4-rank job SIGKILLed (every process) while every rank waits before update 17."""
    d = tmp_path_factory.mktemp("killed")
    proc = start(4, *LAYOUTS[4], *COMMON, "--ckpt-dir", d / "ckpt", "--lr-log", d / "lr.jsonl",
                 faults="pause_at_update=17,rank=all", fault_dir=d)
    wait_for_pause(d, range(4), proc)
    kill_job(proc)
    assert sorted(lrs_by_step(read_log(d / "lr.jsonl"))) == list(range(17))
    assert latest_checkpoint(str(d / "ckpt")).endswith("step_00000015")
    assert os.path.exists(d / "ckpt" / ".colossal_sched.lock")  # left by the killed run: stale from now on
    return d


def tree_digest(root):
    """sha256 of every file's path and bytes under ``root``, the run lock aside."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".colossal_sched.lock"):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def check_resumed(log, reference, start_step, nranks):
    by_step = lrs_by_step(read_log(log))
    assert sorted(by_step) == list(range(start_step, TOTAL))
    for step, per_rank in by_step.items():
        assert sorted(per_rank) == list(range(nranks)), f"step {step}: ranks {sorted(per_rank)}"
        for rank, lr in per_rank.items():
            assert lr == reference[step], f"rank {rank} step {step}: {lr} != {reference[step]}"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("nranks", [2, 8])
def test_sigkilled_job_resumes_on_another_world_size_with_the_exact_lr_curve(tmp_path, killed, nranks):
    work = tmp_path / "run"
    shutil.copytree(killed / "ckpt", work / "ckpt")
    proc = train(nranks, *LAYOUTS[nranks], *COMMON, "--ckpt-dir", work / "ckpt", "--lr-log", work / "lr.jsonl", "--resume")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert f"at step 15 on {nranks} ranks" in proc.stdout
    assert "taking over the stale lock" in proc.stderr and "is gone" in proc.stderr  # the killed run's pid
    assert not os.path.exists(work / "ckpt" / ".colossal_sched.lock")  # released at the clean exit
    check_resumed(work / "lr.jsonl", UNINTERRUPTED, 15, nranks)


@pytest.mark.timeout(600)
def test_kill_during_a_save_leaves_the_previous_checkpoint_to_resume_from(tmp_path):
    ckpt = tmp_path / "ckpt"
    proc = train(4, *LAYOUTS[4], *COMMON, "--ckpt-dir", ckpt, "--lr-log", tmp_path / "first.jsonl",
                 faults="kill_during_save=15")
    assert proc.returncode != 0
    assert sorted(lrs_by_step(read_log(tmp_path / "first.jsonl"))) == list(range(15))
    assert os.path.isdir(ckpt / "step_00000015.partial")  # torn: written, never published
    assert latest_checkpoint(str(ckpt)).endswith("step_00000010")
    proc = train(4, *LAYOUTS[4], *COMMON, "--ckpt-dir", ckpt, "--lr-log", tmp_path / "lr.jsonl", "--resume")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "at step 10 on 4 ranks" in proc.stdout
    check_resumed(tmp_path / "lr.jsonl", UNINTERRUPTED, 10, 4)
    assert not os.path.exists(ckpt / "step_00000015.partial") and latest_checkpoint(str(ckpt)).endswith("step_00000030")


@pytest.mark.timeout(300)
def test_resume_with_another_schedule_is_refused_unless_told_which_to_keep(tmp_path, killed):
    shutil.copytree(killed / "ckpt", tmp_path / "ckpt")
    other = [a if a != "eta_min=1e-5" else "eta_min=2e-5" for a in COMMON]
    before = tree_digest(tmp_path / "ckpt")
    proc = train(2, *LAYOUTS[2], *other, "--ckpt-dir", tmp_path / "ckpt", "--resume")
    assert proc.returncode != 0
    assert "eta_min: saved=1e-05, current=2e-05" in proc.stdout + proc.stderr
    assert tree_digest(tmp_path / "ckpt") == before  # no checkpoint written or changed (the stale lock is gone)
    proc = train(2, *LAYOUTS[2], *other, "--ckpt-dir", tmp_path / "ckpt", "--resume", "--on-mismatch", "use_current",
                 "--stop-at", 16)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "keeping the current schedule (eta_min: 1e-05 -> 2e-05)" in proc.stdout + proc.stderr
