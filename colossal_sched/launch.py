"""Process-group set-up that survives torchrun's elastic restarts.

torchrun (torch >= 2.4) keeps one TCPStore server per agent for the whole job and hands every
restarted worker the same ``MASTER_ADDR:MASTER_PORT`` with ``TORCHELASTIC_USE_AGENT_STORE=True``.
``init_process_group("env://")`` then connects to that store *without* a per-attempt prefix
(torch's comment there assumes a new store per attempt), so a restarted worker reads the previous
attempt's keys and gloo's ``connectFullMesh`` dials the dead workers' ports ("Connection refused")
or waits forever. :func:`init_distributed` puts each attempt under its own key prefix instead.
"""
from __future__ import annotations

import math
import os
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = ["BACKENDS", "init_distributed", "attempt_prefix"]

BACKENDS = ("auto", "gloo", "nccl")
"""``backend`` values :func:`init_distributed` accepts; ``"auto"`` is NCCL with CUDA, gloo without."""


def attempt_prefix() -> str:
    """The store prefix of this torchrun attempt: ``attempt{TORCHELASTIC_RESTART_COUNT}/world{WORLD_SIZE}``.

    The world size is part of it because torchrun restarts the workers *without* counting a restart
    when a node joins (``--nnodes MIN:MAX``); between two failures the world only grows, so the pair
    is unique per attempt.
    """
    return f"attempt{int(os.environ['TORCHELASTIC_RESTART_COUNT'])}/world{int(os.environ['WORLD_SIZE'])}"


def init_distributed(backend: str = "auto", timeout: float = 1800.0) -> None:
    """Initialise the default process group for this process, however it was started.

    * under torchrun with the agent's shared store (the default): on
      ``PrefixStore(attempt_prefix(), TCPStore(MASTER_ADDR, MASTER_PORT, is_master=False))``, so
      every restart attempt gets fresh keys;
    * with ``RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR`` / ``MASTER_PORT`` set by hand (or torchrun with
      ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``): torch's ``env://``;
    * otherwise (``python train.py``): a world of one process on an in-memory store.

    Args:
        backend: ``"auto"`` (NCCL when CUDA is available, else gloo), ``"gloo"`` or ``"nccl"``.
        timeout: seconds a collective or store read may wait before it raises (torch's default 1800).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    if dist.is_initialized():
        raise RuntimeError("init_distributed: the default process group is already initialised")
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    wait = timedelta(seconds=timeout)
    env = os.environ
    if backend == "nccl" and "LOCAL_RANK" in env:
        torch.cuda.set_device(int(env["LOCAL_RANK"]))
    if env.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and "TORCHELASTIC_RESTART_COUNT" in env:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        agent_store = dist.TCPStore(env["MASTER_ADDR"], int(env["MASTER_PORT"]), world, is_master=False, timeout=wait)
        store = dist.PrefixStore(attempt_prefix(), agent_store)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=wait)
    elif "RANK" in env and "WORLD_SIZE" in env:
        dist.init_process_group(backend, init_method="env://", timeout=wait)
    else:
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, timeout=wait)
