"""Issue #9: checkpoints that are never torn, never shared by two runs, and never run code.

Real files and real processes: tampered ``.metadata`` pickles whose payload would create a marker file,
ranks that disagree on the step or on the newest checkpoint, two runs on one directory, stale locks,
local reads on one rank of two, malformed states and symlinks.
"""
import hashlib
import json
import logging
import os
import pickle
import shutil
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import get_state_dict

import checkpoint_workers as cw
import colossal_sched as cs
from colossal_sched.checkpoint import (LOCK_FILE, CheckpointError, RunLock, SafeFileSystemReader, SafeLoadPlanner,
                                       latest_checkpoint, read_booster_state, read_dcp_state, restore, resume, save_dcp,
                                       unpack_state)
from conftest import make_optimizer
from distributed import run
from hooks import LRSchedulerHook
from torchrun import ROOT, lrs_by_step, read_log, start, train, wait_for_pause
import forked


CLI = [sys.executable, "-m", "colossal_sched.cli"]


def hook_at(step, total=100, **kw):
    hook = LRSchedulerHook(cs.CosineAnnealingWarmupLR(make_optimizer(), total, **(kw or {"warmup_steps": 10})))
    hook.step(step)
    return hook


def save(path, step, **extra):
    dcp.save({"lr_scheduler": hook_at(step), **extra}, checkpoint_id=str(path), no_dist=True)
    return str(path)


def digest(root, skip=None):
    """sha256 over every path (files, dirs, links) and file under ``root``; links are never followed."""
    h = hashlib.sha256()
    for dirpath, dirnames, files in os.walk(root):
        dirnames.sort()
        for name in sorted(n for n in dirnames + files if n != skip):
            path = os.path.join(dirpath, name)
            h.update(os.path.relpath(path, root).encode() + b"\0")
            if os.path.islink(path):
                h.update(b"link:" + os.readlink(path).encode())
            elif os.path.isfile(path):
                h.update(open(path, "rb").read())
    return h.hexdigest()


class Payload:
    """A pickle that runs ``touch MARKER`` when loaded by a plain unpickler."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def tamper_metadata(checkpoint, marker):
    (checkpoint / ".metadata").write_bytes(pickle.dumps(Payload(marker)))


def scheduler_snapshot(hook):
    sched = hook.lr_scheduler
    return (json.dumps(sched.state_dict(), sort_keys=True), hook.global_step,
            [{k: v for k, v in g.items() if k != "params"} for g in sched.optimizer.param_groups])


# ----------------------------------------------------------------------------------- no code from pickles
def test_the_payload_is_live_under_plain_dcp_and_dead_under_every_reader_of_ours(tmp_path):
    root = tmp_path / "ckpt"
    save(root / "step_00000005", 5)
    save(root / "step_00000009", 9)
    tamper_metadata(root / "step_00000009", tmp_path / "MARKER")
    live = tmp_path / "live"
    shutil.copytree(root / "step_00000009", live)
    tamper_metadata(live, tmp_path / "LIVE")  # proof that the payload runs code under DCP's own reader
    subprocess.run([sys.executable, "-c", f"from torch.distributed.checkpoint import FileSystemReader as R; "
                                          f"R({str(live)!r}).read_metadata()"], capture_output=True, cwd=ROOT)
    assert (tmp_path / "LIVE").exists()
    before = digest(root)

    with pytest.raises(CheckpointError, match=r"refusing to unpickle global posix\.system") as err:
        read_dcp_state(str(root / "step_00000009"))
    assert len(str(err.value)) < 1024
    assert latest_checkpoint(str(root)) == str(root / "step_00000005")  # skipped, the older one is complete
    with pytest.raises(CheckpointError, match="posix.system"):
        SafeFileSystemReader(str(root / "step_00000009")).read_metadata()
    with pytest.raises(CheckpointException, match="posix.system"):  # DCP wraps each rank's error
        dcp.load({"lr_scheduler": hook_at(0)}, storage_reader=SafeFileSystemReader(str(root / "step_00000009")),
                 planner=SafeLoadPlanner(), no_dist=True)
    hook = hook_at(3)
    snapshot = scheduler_snapshot(hook)
    with pytest.raises(CheckpointError):
        restore(hook, read_dcp_state(str(root / "step_00000009")))
    assert scheduler_snapshot(hook) == snapshot
    out = forked.run(CLI + ["inspect", str(root / "step_00000009")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "posix.system" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    only = tmp_path / "only"
    shutil.copytree(root / "step_00000009", only / "step_00000009")
    out = forked.run(CLI + ["inspect", str(only)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "posix.system" in out.stderr, out.stderr
    assert not (tmp_path / "MARKER").exists()
    assert digest(root) == before  # reading never writes


def test_safe_reader_reads_real_metadata_exactly_as_dcp_does(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4)).to(torch.bfloat16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, dtype=torch.bfloat16)).sum().backward()
    opt.step()
    msd, osd = get_state_dict(model, opt)
    state = {"model": msd, "optimizer": osd, "lr_scheduler": hook_at(7), "ints": torch.arange(5),
             "cl": torch.zeros(2, 3, 4, 5).to(memory_format=torch.channels_last), "meta": {"a": "b", "n": [1, 2.5, None]}}
    dcp.save(state, checkpoint_id=str(tmp_path), no_dist=True)
    ours, theirs = SafeFileSystemReader(str(tmp_path)).read_metadata(), FileSystemReader(str(tmp_path)).read_metadata()
    assert ours.state_dict_metadata == theirs.state_dict_metadata and ours.storage_data == theirs.storage_data
    loaded = {"model": {k: torch.empty_like(v) for k, v in msd.items()}, "meta": {"a": None, "n": None}}
    dcp.load(loaded, storage_reader=SafeFileSystemReader(str(tmp_path)), planner=SafeLoadPlanner(), no_dist=True)
    assert all(torch.equal(loaded["model"][k], v) for k, v in msd.items()) and loaded["meta"] == {"a": "b", "n": [1, 2.5, None]}


def test_metadata_naming_files_outside_the_checkpoint_is_refused(tmp_path):
    save(tmp_path / "step_00000004", 4)
    meta = FileSystemReader(str(tmp_path / "step_00000004")).read_metadata()
    for info in meta.storage_data.values():
        info.relative_path = "../../etc/passwd"
    (tmp_path / "step_00000004" / ".metadata").write_bytes(pickle.dumps(meta))
    with pytest.raises(CheckpointError, match="not a plain file name"):
        read_dcp_state(str(tmp_path / "step_00000004"))
    assert latest_checkpoint(str(tmp_path)) is None


def test_yaml_configs_are_read_with_the_safe_loader(tmp_path):
    cfg = tmp_path / "sched.yaml"
    cfg.write_text(f"!!python/object/apply:os.system ['touch {tmp_path / 'YAML'}']\n")
    out = forked.run(CLI + ["show", str(cfg)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode != 0 and not (tmp_path / "YAML").exists()


def test_corrupt_and_tampered_files_are_refused_and_never_written(tmp_path):
    good = tmp_path / "good"
    save(good, 5, model={"w": torch.ones(3)})
    before = digest(good)
    cases = {}
    for name in ("truncated", "garbage_shards", "tampered_entry", "missing_shard"):
        shutil.copytree(good, tmp_path / name)
        cases[name] = tmp_path / name
    meta = cases["truncated"] / ".metadata"
    meta.write_bytes(meta.read_bytes()[:40])
    for f in cases["garbage_shards"].glob("*.distcp"):
        f.write_bytes(b"\x00garbage" * 10)
    for f in cases["missing_shard"].glob("*.distcp"):
        f.unlink()
    dcp.save({"lr_scheduler": {"colossal_sched": Payload(tmp_path / "ENTRY")}}, checkpoint_id=str(cases["tampered_entry"]),
             no_dist=True)
    digests = {n: digest(p) for n, p in cases.items()}
    for name, path in cases.items():
        with pytest.raises(CheckpointError) as err:
            unpack_state(read_dcp_state(str(path)))
        assert len(str(err.value)) < 1024, name
        assert digest(path) == digests[name], name
    assert not (tmp_path / "ENTRY").exists()
    assert digest(good) == before and unpack_state(read_dcp_state(str(good)))[1] == 5


# ------------------------------------------------------------------------------------- names and symlinks
def test_latest_checkpoint_takes_only_complete_ascii_named_real_directories(tmp_path, caplog):
    root = tmp_path / "ckpt"
    save(root / "step_00000005", 5)
    save(tmp_path / "elsewhere" / "step_00000050", 50)
    (root / "step_00000099").symlink_to(tmp_path / "elsewhere" / "step_00000050")
    save(root / "step_\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668", 8)  # Arabic-Indic digits
    save(root / "step_00000042", 42)
    next(p for p in (root / "step_00000042").glob("*.distcp")).unlink()  # published without a shard
    save(root / "step_00000030", 30)
    shard = next(p for p in (root / "step_00000030").glob("*.distcp"))
    shard.write_bytes(shard.read_bytes()[:10])  # truncated shard
    save(root / "step_00000007.partial", 7)
    with caplog.at_level(logging.WARNING, logger="colossal_sched"):
        assert latest_checkpoint(str(root)) == str(root / "step_00000005")
    assert "step_00000099: a symbolic link" in caplog.text
    assert "step_00000042: storage files named in .metadata are missing" in caplog.text
    assert "step_00000030" in caplog.text and "truncated" in caplog.text
    save(root / "step_00000006", 6)
    assert latest_checkpoint(str(root), max_step=5) == str(root / "step_00000005")
    assert latest_checkpoint(str(root)) == str(root / "step_00000006")
    with pytest.raises(ValueError, match="max_step"):
        latest_checkpoint(str(root), max_step=-1)


def test_save_onto_a_symlinked_step_directory_is_refused_and_follows_nothing(tmp_path):
    target = tmp_path / "precious"
    save(target, 3)
    before = digest(target)
    root = tmp_path / "ckpt"
    root.mkdir()
    (root / "step_00000005").symlink_to(target)
    with pytest.raises(CheckpointError, match="symbolic link"):
        save_dcp({"lr_scheduler": hook_at(5)}, str(root), 5)
    assert os.path.islink(root / "step_00000005") and digest(target) == before
    assert sorted(os.listdir(root)) == ["step_00000005"]
    (root / "step_00000006.partial").symlink_to(target)
    with pytest.raises(CheckpointError, match="symbolic link"):
        save_dcp({"lr_scheduler": hook_at(6)}, str(root), 6)
    assert digest(target) == before


def test_save_dcp_replaces_an_older_copy_of_the_same_step_and_checks_its_step(tmp_path):
    first = save_dcp({"lr_scheduler": hook_at(5)}, str(tmp_path), 5)
    (tmp_path / "step_00000005" / "stray").write_text("old")
    assert save_dcp({"lr_scheduler": hook_at(6)}, str(tmp_path), 5) == first
    assert not (tmp_path / "step_00000005" / "stray").exists() and unpack_state(read_dcp_state(first))[1] == 6
    assert sorted(os.listdir(tmp_path)) == ["step_00000005"]
    with pytest.raises(ValueError, match=r"step must be an int in \[0, 2\*\*62\]"):
        save_dcp({"lr_scheduler": hook_at(5)}, str(tmp_path), -3)


# -------------------------------------------------------------------------------------- malformed states
def _nested(depth):
    return "[" * depth + "]" * depth


MALFORMED = {
    "bad json": {"colossal_sched": '{"scheduler": {"class": '},
    "json nested 100000 deep": {"colossal_sched": '{"scheduler": ' + _nested(100_000) + "}"},
    "dict nested 5000 deep": "nested",
    "entry not a str": {"colossal_sched": 12},
    "scheduler a list": {"colossal_sched": json.dumps({"scheduler": [1, 2]})},
    "global_step a str": "global_step",
    "global_step negative": "global_step_negative",
    "last_epoch a float": "last_epoch",
    "hyperparams a str": "hyperparams",
    "huge json": "huge_json",
    "huge field": "huge",
    "base_lrs of strs": "base_lrs",
    "unknown class": "class",
}


def malformed(name):
    value = MALFORMED[name]
    if not isinstance(value, str):
        return value
    payload = json.loads(hook_at(20).state_dict()["colossal_sched"])
    sched = payload["scheduler"]
    if value == "huge_json":
        return {"colossal_sched": json.dumps({"scheduler": {"class": "x" * (100 << 20)}})}
    if value == "nested":
        deep = {}
        node = deep
        for _ in range(5000):
            node["x"] = {}
            node = node["x"]
        sched["hyperparams"]["eta_min"] = deep
        return {"scheduler": sched, "global_step": 20}
    edits = {"global_step": ("global_step", "20"), "global_step_negative": ("global_step", -4)}
    if value in edits:
        key, v = edits[value]
        payload[key] = v
    elif value == "last_epoch":
        sched["last_epoch"] = 20.5
    elif value == "hyperparams":
        sched["hyperparams"] = "total_steps=100"
    elif value == "huge":
        sched["hyperparams"]["eta_min"] = "9" * (100 << 20)
        return {"scheduler": sched, "global_step": 20}
    elif value == "base_lrs":
        sched["base_lrs"] = ["0.1"] * 4
    elif value == "class":
        sched["class"] = "EvilLR"
    return {"colossal_sched": json.dumps(payload)}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_states_are_refused_briefly_and_change_nothing(name):
    state = malformed(name)
    modes = ("raise", "use_checkpoint") if name == "unknown class" else ("raise", "use_checkpoint", "use_current")
    for on_mismatch in modes:  # use_current keeps this run's schedule: a foreign class is then no obstacle
        hook = hook_at(3)
        snapshot = scheduler_snapshot(hook)
        with pytest.raises((CheckpointError, cs.ScheduleMismatchError)) as err:
            restore(hook, state, on_mismatch)
        assert len(str(err.value)) < 1024 and scheduler_snapshot(hook) == snapshot, on_mismatch
        with pytest.raises((CheckpointError, cs.ScheduleMismatchError)):
            resume(hook.lr_scheduler, state, on_mismatch)
        assert scheduler_snapshot(hook) == snapshot, on_mismatch


def test_a_refused_schedule_change_leaves_scheduler_optimizer_and_hook_untouched():
    saved = hook_at(40, total=200).state_dict()
    payload = json.loads(saved["colossal_sched"])
    payload["scheduler"]["hyperparams"]["eta_min"] = float("nan")  # total_steps 200 is fine, eta_min is not
    bad = {"colossal_sched": json.dumps(payload)}
    for on_mismatch in ("use_checkpoint", "raise"):
        hook = hook_at(3)
        snapshot = scheduler_snapshot(hook)
        with pytest.raises((CheckpointError, cs.ScheduleMismatchError)) as err:
            restore(hook, bad, on_mismatch)
        assert len(str(err.value)) < 1024
        assert scheduler_snapshot(hook) == snapshot and hook.lr_scheduler.total_steps == 100
    other = {"colossal_sched": json.dumps({**payload, "scheduler": {**payload["scheduler"], "class": "StepLR"}})}
    hook = hook_at(3)
    snapshot = scheduler_snapshot(hook)
    with pytest.raises((CheckpointError, cs.ScheduleMismatchError)):
        restore(hook, other, "use_checkpoint")  # another class whose hyperparameters do not build
    assert scheduler_snapshot(hook) == snapshot
    good = hook_at(40, total=200)
    chosen = restore(hook, good.state_dict(), "use_checkpoint")  # and a valid one still applies
    assert chosen.total_steps == 200 and hook.global_step == 40 and chosen.get_last_lr() == good.lr_scheduler.get_last_lr()


def test_booster_files_refuse_malformed_json_briefly(tmp_path):
    path = tmp_path / "colossal_sched_lr_scheduler.json"
    for text in ("[" * 100_000 + "]" * 100_000, '{"scheduler": 3}', json.dumps({"scheduler": {"a": "b" * 70_000}})):
        path.write_text(text)
        with pytest.raises(CheckpointError) as err:
            read_booster_state(str(tmp_path))
        assert len(str(err.value)) < 1024


# ------------------------------------------------------------------------------------------- run lock
def write_lock(ckpt, run_id="other-run", pid=None, host=None, age=0.0):
    ckpt.mkdir(parents=True, exist_ok=True)
    record = {"run_id": run_id, "host": host or socket.gethostname(), "pid": pid or os.getpid(),
              "start_time": time.time() - age, "token": "t", "lease_s": 300.0}
    (ckpt / LOCK_FILE).write_text(json.dumps(record))
    if age:
        os.utime(ckpt / LOCK_FILE, (time.time() - age, time.time() - age))


def test_run_lock_refuses_a_live_owner_and_touches_nothing(tmp_path):
    save(tmp_path / "step_00000005", 5)
    write_lock(tmp_path, run_id="first-run")
    before = digest(tmp_path)
    with pytest.raises(CheckpointError) as err:
        RunLock(str(tmp_path), run_id="second-run").acquire()
    text = str(err.value)
    assert "in use by another run" in text and "first-run" in text and f"pid {os.getpid()}" in text
    assert socket.gethostname() in text and len(text) < 1024
    assert digest(tmp_path) == before


def test_run_lock_takes_over_stale_locks_with_a_warning_and_releases_its_own(tmp_path, caplog):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_lock(tmp_path / "dead", pid=gone.pid)  # its process is gone, on this host
    write_lock(tmp_path / "quiet", host="another-node", age=120)  # alive elsewhere, no heartbeat for 120 s
    for name, why in (("dead", f"its process {gone.pid} is gone"), ("quiet", "no heartbeat for 120 s")):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="colossal_sched"):
            lock = RunLock(str(tmp_path / name), run_id="me", lease_s=60).acquire()
        assert "taking over the stale lock" in caplog.text and "other-run" in caplog.text and why in caplog.text
        record = json.loads((tmp_path / name / LOCK_FILE).read_text())
        assert record["run_id"] == "me" and record["pid"] == os.getpid() and lock.held
        lock.verify()
        lock.release()
        assert not (tmp_path / name / LOCK_FILE).exists()
    write_lock(tmp_path / "fresh", host="another-node", age=30)
    with pytest.raises(CheckpointError, match="in use by another run"):
        RunLock(str(tmp_path / "fresh"), run_id="me", lease_s=60).acquire()
    with pytest.raises(ValueError, match="lease_s"):
        RunLock(str(tmp_path), lease_s=0)


def test_the_same_run_takes_its_lock_back_and_a_lost_lock_stops_publishing(tmp_path):
    first = RunLock(str(tmp_path), run_id="torchrun:job-7").acquire()
    again = RunLock(str(tmp_path), run_id="torchrun:job-7").acquire()  # a restarted worker of the same job
    with pytest.raises(CheckpointError, match="no longer holds the lock"):
        first.verify()
    with pytest.raises(CheckpointError, match="no longer holds the lock"):
        save_dcp({"lr_scheduler": hook_at(5)}, str(tmp_path), 5, lock=first)
    assert not any(n.startswith("step_") for n in os.listdir(tmp_path))
    first.release()  # not its lock any more: left alone
    assert (tmp_path / LOCK_FILE).exists()
    assert save_dcp({"lr_scheduler": hook_at(5)}, str(tmp_path), 5, lock=again).endswith("step_00000005")
    again.release()
    assert not (tmp_path / LOCK_FILE).exists()


def test_workers_of_one_torchrun_job_share_a_run_id_and_so_the_lock(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-42")
    before_restart = RunLock(str(tmp_path)).acquire()
    with caplog.at_level(logging.INFO, logger="colossal_sched"):
        after_restart = RunLock(str(tmp_path)).acquire()  # a new worker process of the same job
    assert before_restart.run_id == after_restart.run_id == "torchrun:job-42"
    assert "taking back this run's own lock" in caplog.text and "taking over" not in caplog.text
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-43")
    with pytest.raises(CheckpointError, match="torchrun:job-42"):
        RunLock(str(tmp_path)).acquire()  # another job
    after_restart.release()
    before_restart.release()


# --------------------------------------------------------------------------------- real gloo processes
@pytest.mark.multiprocess
@pytest.mark.timeout(180)
def test_ranks_passing_different_steps_publish_nothing_and_all_raise(tmp_path):
    ckpt = tmp_path / "ckpt"
    results = run(2, cw.save_with_steps, str(ckpt), [20, 15], tmp_path=tmp_path, timeout=150, dist_timeout=60)
    assert [r["error"] for r in results] == ["CheckpointError", "CheckpointError"]
    message = results[0]["message"]
    assert results[1]["message"] == message and len(message) < 1024
    assert "ranks disagree on the checkpoint to save" in message
    assert "rank 0: step 20 into" in message and "rank 1: step 15 into" in message
    assert not ckpt.exists() or not [n for n in os.listdir(ckpt) if n.startswith("step_")]


@pytest.mark.multiprocess
@pytest.mark.timeout(180)
def test_refusals_seen_by_rank_0_alone_reach_every_rank_and_publish_nothing(tmp_path):
    ckpt, work = tmp_path / "ckpt", tmp_path / "work"
    ckpt.mkdir()
    work.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (ckpt / "step_00000005").symlink_to(tmp_path / "elsewhere")
    results = run(2, cw.refusals_reach_every_rank, str(ckpt), tmp_path=work, timeout=150)
    for case, fragment in (("symlink", "symbolic link"), ("verification", "__1_0.distcp (missing)")):
        outs = [r[case] for r in results]
        assert [o.get("error") for o in outs] == ["CheckpointError", "CheckpointError"], outs
        assert outs[0]["message"] == outs[1]["message"] and fragment in outs[0]["message"]
    assert os.listdir(tmp_path / "elsewhere") == []  # nothing written through the link
    assert sorted(os.listdir(ckpt)) == ["step_00000005", "step_00000006.partial"]  # the torn save stays unpublished
    assert latest_checkpoint(str(ckpt)) is None


@pytest.mark.multiprocess
@pytest.mark.timeout(180)
def test_agreed_save_publishes_every_shard_and_reads_back_on_every_rank(tmp_path):
    ckpt, work = tmp_path / "ckpt", tmp_path / "work"
    work.mkdir()
    results = run(2, cw.save_and_read, str(ckpt), str(ckpt), tmp_path=work, timeout=150)
    assert {r["path"] for r in results} == {str(ckpt / "step_00000012")}
    assert all(r["step"] == 12 and r["last_epoch"] == 12 for r in results)
    assert {"__0_0.distcp", "__1_0.distcp", ".metadata"} <= set(results[0]["files"])
    assert sorted(os.listdir(ckpt)) == ["step_00000012"]  # published, lock released, no .partial left


@pytest.mark.multiprocess
@pytest.mark.timeout(180)
def test_read_dcp_state_on_one_rank_of_two_issues_no_collective(tmp_path):
    ckpt = tmp_path / "ckpt"
    save(ckpt / "step_00000033", 33)
    work = tmp_path / "work"
    work.mkdir()
    results = run(2, cw.read_on_one_rank, str(ckpt), tmp_path=work, timeout=150, dist_timeout=30)
    assert results[0]["step"] == 33 and results[1] == {"saw_rank0": True}


@pytest.mark.multiprocess
@pytest.mark.timeout(180)
def test_a_stale_listing_on_one_rank_stops_every_rank_before_resuming(tmp_path):
    fresh, stale = tmp_path / "fresh", tmp_path / "stale"
    save(fresh / "step_00000005", 5)
    shutil.copytree(fresh, stale)
    save(fresh / "step_00000010", 10)
    work = tmp_path / "work"
    work.mkdir()
    results = run(2, cw.resume_agreement, [str(fresh), str(stale)], tmp_path=work, timeout=150)
    assert [r.get("error") for r in results] == ["CheckpointError", "CheckpointError"]
    message = results[0]["message"]
    assert message == results[1]["message"] and "ranks disagree on the checkpoint to resume from" in message
    assert f"rank 0: {fresh / 'step_00000010'}" in message and f"rank 1: {stale / 'step_00000005'}" in message


@pytest.mark.multiprocess
@pytest.mark.timeout(180)
def test_a_lock_refusal_reaches_every_rank(tmp_path):
    ckpt = tmp_path / "ckpt"
    write_lock(ckpt, run_id="first-run")
    work = tmp_path / "work"
    work.mkdir()
    results = run(2, cw.lock_refused, str(ckpt), tmp_path=work, timeout=150)
    assert [r.get("error") for r in results] == ["CheckpointError", "CheckpointError"]
    assert results[0]["message"] == results[1]["message"] and "first-run" in results[0]["message"]
    assert json.loads((ckpt / LOCK_FILE).read_text())["run_id"] == "first-run"


# ---------------------------------------------------------------------------------------- train.py jobs
ARGS = ["--dp", 2, "--total-steps", 20, "--warmup-steps", 2, "--save-every", 5, "--log-every", 0]


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    """A finished 2-rank train.py run that saved step_00000005 and step_00000010."""
    d = tmp_path_factory.mktemp("two")
    proc = train(2, *ARGS, "--ckpt-dir", d / "ckpt", "--stop-at", 10)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert sorted(os.listdir(d / "ckpt")) == ["step_00000005", "step_00000010"]
    return d / "ckpt"


@pytest.mark.multiprocess
@pytest.mark.timeout(400)
def test_train_resume_never_runs_a_tampered_metadata_and_a_stale_listing_stops_every_rank(tmp_path, two_checkpoints):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(two_checkpoints, ckpt)
    tamper_metadata(ckpt / "step_00000010", tmp_path / "MARKER")
    proc = train(2, *ARGS, "--ckpt-dir", ckpt, "--resume", "--stop-at", 7, "--lr-log", tmp_path / "lr.jsonl")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "resumed from" in proc.stdout and "step_00000005 at step 5" in proc.stdout
    assert "skipping" in proc.stderr and "posix.system" in proc.stderr
    assert not (tmp_path / "MARKER").exists()
    assert sorted(lrs_by_step(read_log(tmp_path / "lr.jsonl"))) == [5, 6]

    ckpt = tmp_path / "stale"
    shutil.copytree(two_checkpoints, ckpt)
    before = digest(ckpt, skip=LOCK_FILE)
    proc = train(2, *ARGS, "--ckpt-dir", ckpt, "--resume", faults="stale_listing=5,rank=1", timeout=240)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert out.count("ranks disagree on the checkpoint to resume from") >= 2  # raised on both ranks
    assert f"rank 0: {ckpt / 'step_00000010'}; rank 1: {ckpt / 'step_00000005'}" in out
    assert digest(ckpt, skip=LOCK_FILE) == before  # no new checkpoint, nothing changed


@pytest.mark.multiprocess
@pytest.mark.timeout(500)
def test_a_second_job_on_the_same_ckpt_dir_refuses_and_the_first_completes(tmp_path):
    ckpt, faults = tmp_path / "ckpt", tmp_path / "faults"
    faults.mkdir()
    first = start(2, *ARGS, "--ckpt-dir", ckpt, "--stop-at", 15, "--lr-log", tmp_path / "first.jsonl",
                  faults="pause_at_update=7,rank=all", fault_dir=faults)
    try:
        wait_for_pause(faults, range(2), first)
        before = digest(ckpt)
        second = train(2, *ARGS, "--ckpt-dir", ckpt, "--lr-log", tmp_path / "second.jsonl", timeout=240)
        assert second.returncode != 0
        assert "in use by another run" in second.stderr and f"on {socket.gethostname()}" in second.stderr
        assert digest(ckpt) == before and not (tmp_path / "second.jsonl").exists()
        (faults / "continue").touch()
        out, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            from torchrun import kill_job
            kill_job(first)
    assert first.returncode == 0, out[-3000:]
    assert sorted(os.listdir(ckpt)) == ["step_00000005", "step_00000010", "step_00000015"]
    for step in (5, 10, 15):
        path = str(ckpt / f"step_{step:08d}")
        assert unpack_state(read_dcp_state(path))[1] == step
        meta = SafeFileSystemReader(path).read_metadata()
        assert {i.relative_path for i in meta.storage_data.values()} == {"__0_0.distcp", "__1_0.distcp"}
