"""Workarounds for running ColossalAI 0.5.0 on torch 2.13 and on CPU.

* :func:`init_legacy_context`: the legacy Trainer's global context without ``colossalai.legacy.launch``.
* :func:`allow_cpu_synchronize`: ColossalAI's CPU accelerator raises on ``synchronize()``, which its
  sharded-optimizer load calls; on a CPU there is nothing to wait for.
* :func:`unwrap_grad_accum`: the scheduler and accumulation size inside ColossalAI's
  ``GradAccumLrSchedulerByStep`` (what ``colossalai.legacy.initialize`` returns with ``gradient_accumulation``).

Legacy context: ``colossalai.legacy.launch`` builds ``init_method = f"tcp://[{host}]:{port}"``; torch 2.13 rejects the
bracketed IPv4 host. :func:`init_legacy_context` does what ``launch`` does, but on a process group
initialised by torch itself (torchrun's env://, or any ``init_process_group`` already done).

On a machine without CUDA, ``colossalai.legacy.initialize`` would wrap a data-parallel model in
DDP with ``device_ids=[torch.cuda.current_device()]``; the context therefore defaults to
ColossalAI's own ``DataParallelGradientHandler`` there (its gradient all-reduce runs on gloo).
"""
from __future__ import annotations

from typing import Any


def init_legacy_context(config: dict | None = None, backend: str = "gloo", seed: int = 1024) -> Any:
    """Set up colossalai's legacy global context (``gpc``) on torch's default process group.

    Initialises the default group with ``backend`` from torchrun's environment if it is not
    initialised yet. Returns ``gpc``.
    """
    import torch
    import torch.distributed as dist
    from colossalai.context import Config
    from colossalai.legacy.context import ParallelMode
    from colossalai.legacy.core import global_context as gpc

    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    config = dict(config or {})
    if not torch.cuda.is_available():
        config.setdefault("gradient_handler", [dict(type="DataParallelGradientHandler")])
    gpc.load_config(Config(config))
    cpu_group = dist.new_group(list(range(world)), backend="gloo") if dist.get_backend() != "gloo" else None
    gpc._register_dist(rank, world, dist.GroupMember.WORLD, cpu_group, list(range(world)), ParallelMode.GLOBAL)
    gpc.add_global_rank(ParallelMode.GLOBAL, rank)
    gpc.init_parallel_groups()
    gpc.set_seed(seed)
    return gpc


def allow_cpu_synchronize() -> None:
    """Make ColossalAI's ``CpuAccelerator.synchronize()`` a no-op (it raises "not supported").

    ``booster.load_optimizer`` of a sharded checkpoint calls it after loading each shard; on a
    CPU every operation has already completed, so waiting is a no-op. Idempotent.
    """
    from colossalai.accelerator.cpu_accelerator import CpuAccelerator

    CpuAccelerator.synchronize = lambda self, device=None: None


def unwrap_grad_accum(lr_scheduler: Any) -> tuple[Any, int]:
    """``(scheduler, accumulate_size)`` for ColossalAI's ``GradAccumLrSchedulerByStep`` wrapper, else ``(lr_scheduler, 1)``.

    ``colossalai.legacy.initialize`` wraps the scheduler in it when the config has
    ``gradient_accumulation``; the wrapper steps its scheduler once every ``accumulate_size``
    micro-batches, so the update of micro-batch :math:`k` is :math:`\\lfloor k / A \\rfloor`.
    Recognised by class name and attributes, so colossalai is not imported here.
    """
    if type(lr_scheduler).__name__ == "GradAccumLrSchedulerByStep" and hasattr(lr_scheduler, "accumulate_size"):
        size = lr_scheduler.accumulate_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"GradAccumLrSchedulerByStep.accumulate_size must be an int >= 1, got {size!r}")
        return lr_scheduler.lr_scheduler, size
    return lr_scheduler, 1
