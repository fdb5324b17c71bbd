"""Checkpoint agreement: cross-rank verdicts for checkpoint steps that must not go ahead on a subset of ranks.

(The other cross-rank agreement, on every update's lr and step, is :mod:`colossal_sched.lr_sync`; a new
check that a checkpoint step makes goes through :func:`agree` here.)

* :func:`agree` (the run lock, the checkpoint to resume from): every rank contributes a few integers
  and, optionally, its own refusal; one ``all_reduce(MAX)`` of a small int64 tensor (the values and
  their negatives) settles it.
* :func:`describe_refusals`: the same check on per-rank tags already gathered by another collective
  (``save_dcp`` uses DCP's planning collective).
* :func:`share_verdict`: rank 0's verdict to every rank in one ``broadcast`` (``save_dcp``'s publish).

Where ranks differ or any refused, every rank raises the same :class:`CheckpointError` (a second
exchange carries the descriptions, on the failure path only), so no rank is left waiting in a
collective its peers never enter.
"""
from __future__ import annotations

import hashlib
from typing import Any, Sequence

import torch
import torch.distributed as dist

from .errors import CheckpointError

MAX_MESSAGE = 900
"""Refusals stay under 1 KiB whatever the ranks reported."""


def fingerprint(text: str) -> int:
    """A stable 56-bit hash of ``text`` (the same in every process, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=7).digest(), "big")


def is_coordinator(group: Any = None) -> bool:
    """Rank 0 of ``group`` (the world by default), or any process without ``torch.distributed``."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank(group) == 0


def _device(group: Any) -> torch.device:
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def agree(what: str, values: Sequence[int], describe: str = "", error: str | None = None, group: Any = None) -> None:
    """Return on every rank if every rank passed the same ``values`` and no ``error``; else raise the
    same :class:`CheckpointError` on every rank, naming ``what`` and each rank's description or refusal.

    Without an initialised process group it only raises ``error`` (if any). ``values`` are ints that
    fit int64 (use :func:`fingerprint` for strings).
    """
    if not (dist.is_available() and dist.is_initialized()):
        if error is not None:
            raise CheckpointError(_cut(error))
        return
    world = dist.get_world_size(group)
    flags = [0 if error is None else 1, *values]
    # one all_reduce(MAX) of (flags, -flags): every rank agrees iff max == min for every entry and nobody refused
    both = torch.tensor(flags + [-v for v in flags], dtype=torch.int64, device=_device(group))
    dist.all_reduce(both, op=dist.ReduceOp.MAX, group=group)
    high, low = both[: len(flags)].tolist(), [-v for v in both[len(flags):].tolist()]
    if high[0] == 0 and high == low:
        return
    reports: list[Any] = [None] * world  # the failure path only: each rank's values, description and refusal
    mine = (list(values), _cut(describe, 600), None if error is None else _cut(error, 600))
    dist.all_gather_object(reports, mine, group=group)
    raise CheckpointError(describe_refusals(what, reports))


def share_verdict(error: str | None, group: Any = None) -> None:
    """Rank 0's verdict (``error`` there, None for success) to every rank in one small ``broadcast``;
    every rank then returns or raises the same :class:`CheckpointError`."""
    if not (dist.is_available() and dist.is_initialized()):
        if error is not None:
            raise CheckpointError(_cut(error))
        return
    flag = torch.tensor([0 if error is None else 1], dtype=torch.int64, device=_device(group))
    dist.broadcast(flag, group=group, group_src=0)
    if flag.item():
        message = [_cut(error or "")]
        dist.broadcast_object_list(message, group=group, group_src=0)  # the failure path only
        raise CheckpointError(message[0])


def describe_refusals(what: str, tags: Sequence[tuple[Any, str, str | None]]) -> str | None:
    """The refusal of ``what`` for per-rank ``(value, description, refusal or None)``, or None if every
    rank passed the same value and none refused (the check :func:`agree` makes, on gathered tags)."""
    refused = {r: t[2] for r, t in enumerate(tags) if t[2] is not None}
    if refused:
        return _cut(f"{what}: refused on {_grouped(refused)}")
    if any(t[0] != tags[0][0] for t in tags):
        return _cut(f"ranks disagree on {what}: {_grouped({r: t[1] for r, t in enumerate(tags)})}; nothing was done")
    return None


def _grouped(by_rank: dict[int, str]) -> str:
    """``rank 0: a; ranks [1, 2]: b`` (ranks with the same text together)."""
    same: dict[str, list[int]] = {}
    for rank, text in by_rank.items():
        same.setdefault(str(text), []).append(rank)
    return "; ".join(f"rank {r[0]}: {t}" if len(r) == 1 else f"ranks {_ranks(r)}: {t}" for t, r in same.items())


def _ranks(ranks: list[int]) -> str:
    return str(ranks) if len(ranks) <= 8 else f"[{ranks[0]}, {ranks[1]}, ... {ranks[-1]}] ({len(ranks)} ranks)"


def _cut(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 20] + f"... ({len(text)} chars)"


__all__ = ["agree", "share_verdict", "describe_refusals", "fingerprint"]
