"""Rank functions for tests/test_checkpoint_integrity.py, run on real gloo processes by distributed.run."""
import os
import time

import torch
import torch.distributed as dist

import colossal_sched as cs
from colossal_sched.checkpoint import (CheckpointError, RunLock, agree_on_checkpoint, latest_checkpoint, read_dcp_state,
                                       save_dcp, unpack_state)
from hooks import LRSchedulerHook


def _hook(step):
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(2)]
    opt = torch.optim.SGD([{"params": [p], "lr": 0.1} for p in params], lr=0.1)
    hook = LRSchedulerHook(cs.CosineAnnealingLR(opt, 100), sync=False)
    hook.step(step)
    return hook


def _outcome(fn):
    """``{"ok": value}`` or ``{"error": type, "message": text}``: a refusal is a result to compare across ranks."""
    try:
        return {"ok": fn()}
    except CheckpointError as e:
        return {"error": type(e).__name__, "message": str(e)}


def save_with_steps(rank, world, ckpt_dir, steps):
    """Each rank passes its own step to save_dcp; then the ranks must still be able to work together."""
    state = {"model": {"w": torch.full((4,), float(rank))}, "lr_scheduler": _hook(steps[rank])}
    out = _outcome(lambda: save_dcp(state, ckpt_dir, steps[rank]))
    dist.barrier()  # every rank got here: nobody is stuck in a collective
    return out


def save_and_read(rank, world, ckpt_dir, lock_dir):
    """A save with the run lock, then read back on every rank."""
    lock = RunLock(lock_dir).acquire()
    path = save_dcp({"model": {"w": torch.full((4,), float(rank))}, "lr_scheduler": _hook(12)}, ckpt_dir, 12, lock=lock)
    state, step = unpack_state(read_dcp_state(path))
    lock.release()
    return {"path": path, "step": step, "last_epoch": state["last_epoch"], "files": sorted(os.listdir(path))}


def read_on_one_rank(rank, world, ckpt_dir):
    """Rank 0 alone reads (latest_checkpoint, read_dcp_state) while rank 1 waits in no collective at all."""
    if rank == 0:
        t0 = time.monotonic()
        path = latest_checkpoint(ckpt_dir)
        state, step = unpack_state(read_dcp_state(path))
        elapsed = time.monotonic() - t0
        with open(os.path.join(ckpt_dir, "..", "rank0.done"), "w") as f:
            f.write(str(elapsed))
        return {"step": step, "elapsed": elapsed}
    marker = os.path.join(ckpt_dir, "..", "rank0.done")
    deadline = time.monotonic() + 60
    while not os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting for a file, not a collective: rank 0 must finish on its own
    return {"saw_rank0": os.path.exists(marker)}


def resume_agreement(rank, world, views):
    """Each rank looks at its own view of the checkpoint directory (rank 1's is stale)."""
    out = _outcome(lambda: agree_on_checkpoint(latest_checkpoint(views[rank])))
    dist.barrier()
    return out


def lock_refused(rank, world, ckpt_dir):
    """Another run holds the lock: every rank must get the refusal."""
    out = _outcome(lambda: RunLock(ckpt_dir, run_id="second-run").acquire() and "acquired")
    dist.barrier()
    return out


def refusals_reach_every_rank(rank, world, ckpt_dir):
    """Rank 0 alone can see the faults: a symlinked step directory (before writing) and a shard gone
    missing after writing (verification); every rank must get each refusal, and nothing is published."""
    state = {"model": {"w": torch.full((4,), float(rank))}, "lr_scheduler": _hook(5)}
    before = _outcome(lambda: save_dcp(state, ckpt_dir, 5))

    def lose_a_shard():
        if rank == 0:
            os.unlink(os.path.join(ckpt_dir, "step_00000006.partial", "__1_0.distcp"))

    after = _outcome(lambda: save_dcp(state, ckpt_dir, 6, on_written=lose_a_shard))
    dist.barrier()
    return {"symlink": before, "verification": after}
