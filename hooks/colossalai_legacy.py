"""Running ColossalAI's legacy Trainer where ``colossalai.legacy.launch`` cannot (torch >= 2.6, CPU).

``colossalai.legacy.launch`` builds ``init_method = f"tcp://[{host}]:{port}"``; torch 2.13 rejects the
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
