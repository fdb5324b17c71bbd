"""Bodies of the multi-rank re-plan tests (issue #12); each runs on every rank of a real gloo world."""
import os

import torch

import colossal_sched as cs
from colossal_sched.checkpoint import latest_checkpoint, read_dcp_state, restore, save_dcp

WSD = dict(warmup_steps=4, decay_steps=10, decay_style="cosine", min_lr=0.001)


def optimizer():
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(2)]
    return torch.optim.SGD([{"params": [params[0]], "lr": 0.1}, {"params": [params[1]], "lr": 0.2}], lr=0.1, momentum=0.9)


def hook_for(sched):
    from hooks import LRSchedulerHook

    return LRSchedulerHook(sched, timeout=30.0)


def replan_save_resume(rank, world, ckpt_dir, phase, replan_at, new_total, save_at):
    """``train``: every rank re-plans through the hook at ``replan_at`` and a DCP checkpoint is saved at
    ``save_at``; ``resume``: a fresh run built without the re-plan restores it and finishes."""
    sched = cs.WarmupStableDecayLR(optimizer(), 40, **WSD)
    hook = hook_for(sched)
    seen, start = {}, 0
    if phase == "resume":
        ckpt = latest_checkpoint(ckpt_dir)
        restore(hook, read_dcp_state(ckpt))
        start = hook.global_step
    stop = new_total if phase == "resume" else save_at
    for n in range(start, stop):
        hook.step(n)
        if phase == "train" and n == replan_at:
            hook.replan(new_total)
        seen[n] = [g["lr"] for g in sched.optimizer.param_groups]
    if phase == "train":
        hook.step(save_at)
        save_dcp({"lr_scheduler": hook}, ckpt_dir, save_at)
    return {"seen": {str(k): v for k, v in seen.items()}, "start": start, "fingerprint": sched.fingerprint(),
            "replans": [list(r) for r in sched.replans], "total_steps": sched.total_steps}


def replan_alone(rank, world, replan_at, new_total):
    """Rank 1 re-plans its scheduler alone: the next sync is a schedule mismatch on every rank."""
    sched = cs.WarmupStableDecayLR(optimizer(), 40, **WSD)
    hook = hook_for(sched)
    for n in range(replan_at + 1):
        hook.step(n)
    if rank == 1:
        sched.replan(new_total)
    try:
        hook.step(replan_at + 1)
    except Exception as e:  # recorded on every rank: the test checks they all refused
        return {"error": type(e).__name__, "message": str(e)[:400]}
    return {"error": None}


def ckpt_path(tmp):
    return os.path.join(str(tmp), "ckpt")
