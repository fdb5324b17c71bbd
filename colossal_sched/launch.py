"""Process-group set-up that survives torchrun's elastic restarts.

torchrun keeps one store per agent for the whole job and hands restarted workers no per-attempt prefix,
so a restarted worker would read a dead attempt's keys; a restart count is no prefix across nodes (each
agent counts its own). :func:`init_distributed` therefore gives every attempt a store of its own, hosted by
its rank 0 and announced through the agent's store with a nonce, and tears down what it created at
interpreter exit. The whole story: README's "Two nodes, elastic restarts, node loss".
"""
from __future__ import annotations

import atexit
import math
import os
import time
import uuid
from datetime import timedelta

import torch
import torch.distributed as dist

from ._validate import ArgumentTypeError

__all__ = ["BACKENDS", "STORE_KEY", "init_distributed"]

BACKENDS = ("auto", "gloo", "nccl")
"""``backend`` values :func:`init_distributed` accepts; ``"auto"`` is NCCL with CUDA, gloo without."""


STORE_KEY = "colossal_sched/attempt_store"
"""The agent-store key where each attempt's rank 0 announces ``PORT:NONCE`` of its own store."""


def _attempt_store(agent_store: dist.Store, host: str, rank: int, wait: timedelta) -> dist.Store:
    """This attempt's store: rank 0 hosts a new TCPStore and announces it; the others poll the announcement
    until it names a live store holding the announced nonce (an older attempt's store died with its rank 0)."""
    if rank == 0:
        store = dist.TCPStore(host, 0, None, is_master=True, timeout=wait, wait_for_workers=False)
        nonce = uuid.uuid4().hex
        store.set(STORE_KEY, nonce)
        agent_store.set(STORE_KEY, f"{store.port}:{nonce}")
        return store
    deadline = time.monotonic() + wait.total_seconds()
    while True:
        port, nonce = agent_store.get(STORE_KEY).decode().split(":")
        try:
            store = dist.TCPStore(host, int(port), None, is_master=False, timeout=timedelta(seconds=2))
            if store.get(STORE_KEY).decode() == nonce:
                store.set_timeout(wait)
                return store
        except (RuntimeError, TimeoutError, ValueError):  # refused (a dead attempt's store), or not a TCPStore
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"init_distributed: rank {rank} found no live store of this attempt at {host} "
                               f"(last announced port {port}) within {wait.total_seconds():g} s")
        time.sleep(0.1)


def init_distributed(backend: str = "auto", timeout: float = 1800.0) -> None:
    """Initialise the default process group for this process, however it was started.

    * under torchrun with the agent's shared store (the default): on a store of this attempt's own,
      hosted by its rank 0 on ``MASTER_ADDR`` and found through the agent's store at
      ``MASTER_ADDR:MASTER_PORT``, so a restart never reads an earlier attempt's keys;
    * with ``RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR`` / ``MASTER_PORT`` set by hand (or torchrun with
      ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``): torch's ``env://``;
    * otherwise (``python train.py``): a world of one process on an in-memory store.

    Args:
        backend: ``"auto"`` (NCCL when CUDA is available, else gloo), ``"gloo"`` or ``"nccl"``.
        timeout: seconds a collective or store read may wait before it raises (torch's default 1800).
    """
    if not isinstance(backend, str):
        raise ArgumentTypeError(f"backend must be one of {BACKENDS}, got {backend!r} ({type(backend).__name__})")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ArgumentTypeError(f"timeout must be a finite number of seconds > 0, got {timeout!r} ({type(timeout).__name__})")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    if dist.is_initialized():
        raise RuntimeError("init_distributed: the default process group is already initialised")
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    wait = timedelta(seconds=timeout)
    env = os.environ
    if backend == "nccl" and "LOCAL_RANK" in env:
        torch.cuda.set_device(int(env["LOCAL_RANK"]))
    stores: list[dist.Store] = []
    if env.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and "TORCHELASTIC_RESTART_COUNT" in env:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        agent_store = dist.TCPStore(env["MASTER_ADDR"], int(env["MASTER_PORT"]), None, is_master=False, timeout=wait)
        stores = [agent_store, _attempt_store(agent_store, env["MASTER_ADDR"], rank, wait)]
        dist.init_process_group(backend, store=stores[1], rank=rank, world_size=world, timeout=wait)
    elif "RANK" in env and "WORLD_SIZE" in env:
        dist.init_process_group(backend, init_method="env://", timeout=wait)
    else:
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, timeout=wait)
    atexit.register(_teardown, [dist.group.WORLD, *stores])


def _teardown(created: list) -> None:
    """At interpreter exit: destroy every process group if the default one is still the group
    :func:`init_distributed` made (``created[0]``; groups made after it, e.g. the lr sync's, close first:
    ``atexit`` runs last-registered first), then let the stores go (rank 0's store server stops with them)."""
    world, created[:] = created[0], []
    if dist.is_initialized() and dist.group.WORLD is world:
        dist.destroy_process_group()
