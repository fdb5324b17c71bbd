"""Rank 0's lr, momentum and step, sent to every rank of a group in one collective per sync."""
from __future__ import annotations

import math
import warnings
import zlib
from datetime import timedelta
from typing import Any, Sequence

import torch
import torch.distributed as dist

from . import _validate as V
from .base import ClosedFormLR, group_names
from .errors import LayoutMismatchError, LRDivergenceError

ON_DIVERGENCE = ("fix", "warn", "raise")
RELATIVE_TOLERANCE = 1e-12
_HEADER = 4  # global step, number of groups, has momentum, layout key


def resolve_ranks(group: Any = None) -> tuple[list[int], int]:
    """Global ranks of ``group`` and the source rank whose lr is the truth.

    ``group`` may be None (the default world group), a ``ProcessGroup`` (source: its rank 0),
    a ``DeviceMesh`` (all its ranks; source: the rank at coordinate 0), ColossalAI's
    ``ProcessGroupMesh`` (all its ranks; source 0), or a booster plugin exposing ``pg_mesh``
    or ``dp_group``/``pp_group``/``tp_group`` that together span the world.
    """
    from torch.distributed.device_mesh import DeviceMesh

    world = dist.get_world_size()
    if group is None or group is dist.group.WORLD:
        return list(range(world)), 0
    if isinstance(group, DeviceMesh):
        flat = group.mesh.flatten().tolist()
        return sorted(flat), flat[0]
    if isinstance(group, dist.ProcessGroup):
        return sorted(dist.get_process_group_ranks(group)), dist.get_global_rank(group, 0)
    if hasattr(group, "get_group_along_axis") and hasattr(group, "shape"):  # colossalai ProcessGroupMesh
        return list(range(math.prod(group.shape))), 0
    if getattr(group, "pg_mesh", None) is not None:
        return resolve_ranks(group.pg_mesh)
    sub = [getattr(group, name, None) for name in ("dp_group", "pp_group", "tp_group")]
    if any(g is not None for g in sub):
        size = math.prod(dist.get_world_size(g) for g in sub if g is not None)
        if size != world:
            raise ValueError(f"the plugin's dp/pp/tp groups span {size} ranks, not the world's {world}: pass group=")
        return list(range(world)), 0
    raise V.ArgumentTypeError(
        "group must be None, a torch.distributed ProcessGroup, a DeviceMesh, a colossalai ProcessGroupMesh, "
        f"or a booster plugin with dp_group/pp_group/tp_group; got {type(group).__name__}"
    )


def group_layout(optimizer: torch.optim.Optimizer) -> list[str]:
    """Each param group's key: its ``name`` where it has one, else its position."""
    return [str(name) if name is not None else f"#{i}" for i, name in enumerate(group_names(optimizer))]


def _layout_key(layout: Sequence[str]) -> float:
    return float(zlib.crc32("\x00".join(layout).encode()))


def _match(mine: list[str], src: list[str]) -> list[int] | None:
    """Index into the source layout of each of my groups, or None where they cannot be matched."""
    if mine == src:
        return list(range(len(mine)))
    if all(not k.startswith("#") for k in mine) and set(mine) <= set(src):
        return [src.index(k) for k in mine]
    return None


class LRBroadcaster:
    """Send the source rank's lrs, momenta and global step to every rank of a group.

    One ``broadcast`` of one flat float64 tensor per sync, on a CPU (gloo) group created once
    with ``timeout`` (so an NCCL job adds no host-device synchronisation and a dead peer is an
    error, not a hang). Layouts are exchanged once, at construction: param groups are matched by
    ``name`` (or position when unnamed), and a mismatch raises on every rank at once.

    Args:
        optimizer (Optimizer): The optimizer that receives the lrs (its param groups are the layout).
        group: Which ranks (see :func:`resolve_ranks`).
        on_divergence (str): ``"fix"`` overwrite, ``"warn"`` overwrite and warn with rank and size,
            ``"raise"`` raise :class:`LRDivergenceError`, when a rank's lr differs from the source's
            by more than 1e-12 relative.
        timeout (float): Seconds before a collective with a dead peer raises.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, group: Any = None, *, on_divergence: str = "fix", timeout: float = 60.0
    ):
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("LRBroadcaster needs torch.distributed initialised (torchrun, init_process_group)")
        self.optimizer = optimizer
        self.on_divergence = V.choice("on_divergence", on_divergence, ON_DIVERGENCE)
        self.timeout = V.real("timeout", timeout, low=0.0, low_open=True)
        self.ranks, self.src = resolve_ranks(group)
        self.rank = dist.get_rank()
        self.process_group = dist.new_group(
            self.ranks, backend="gloo", timeout=timedelta(seconds=self.timeout), use_local_synchronization=True
        )
        self.collectives = 0  # collectives issued by sync(), for tests and benchmarks
        self.divergences = 0
        self._setup_layout()

    def _setup_layout(self) -> None:
        mine = group_layout(self.optimizer)
        layouts: list[Any] = [None] * len(self.ranks)
        dist.all_gather_object(layouts, mine, group=self.process_group)
        src_layout = layouts[self.ranks.index(self.src)]
        bad = [(r, lay) for r, lay in zip(self.ranks, layouts) if _match(lay, src_layout) is None]
        if bad:
            detail = "; ".join(f"rank {r}: {lay}" for r, lay in bad)
            raise LayoutMismatchError(
                f"param groups cannot be matched to source rank {self.src}'s layout {src_layout}: {detail} "
                "(give the groups a 'name' so stages holding a subset can be matched)"
            )
        self.src_layout = src_layout
        self._index = _match(mine, src_layout)
        self._key = _layout_key(src_layout)
        self._capacity = max(len(lay) for lay in layouts)
        self._buffer = torch.zeros(_HEADER + 2 * self._capacity, dtype=torch.float64)
        self._view = self._buffer.numpy()

    def sync(self, s: ClosedFormLR) -> None:
        """Broadcast the source's current lrs (and momenta, step) of scheduler ``s`` and write them
        through ``s`` on every other rank."""
        view, n = self._view, len(self.src_layout)
        if self.rank == self.src:
            momenta = s.momentum_at(s.last_epoch)
            view[:_HEADER] = (s.last_epoch, n, momenta is not None, self._key)
            view[_HEADER : _HEADER + n] = s.get_last_lr()
            if momenta is not None:
                view[_HEADER + self._capacity : _HEADER + self._capacity + n] = momenta
        dist.broadcast(self._buffer, src=self.src, group=self.process_group)
        self.collectives += 1
        if self.rank != self.src:
            self._receive(s)

    def _receive(self, s: ClosedFormLR) -> None:
        view = self._view
        step, n, has_momentum, key = int(view[0]), int(view[1]), bool(view[2]), view[3]
        if key != self._key or n != len(self.src_layout) or len(s.optimizer.param_groups) != len(self._index):
            raise LayoutMismatchError(
                f"rank {self.rank}: param groups changed since construction (source rank {self.src} sends {n} groups, "
                f"layout {self.src_layout}; this rank holds {group_layout(s.optimizer)})"
            )
        src_lrs = view[_HEADER : _HEADER + n].tolist()
        lrs = [src_lrs[i] for i in self._index]
        local = s.get_last_lr()
        worst = max((abs(a - b) / max(abs(b), 1e-300) for a, b in zip(local, lrs)), default=0.0)
        if worst > RELATIVE_TOLERANCE:
            self.divergences += 1
            msg = (
                f"rank {self.rank}: lr {local} differs from source rank {self.src}'s {lrs} at step {step} "
                f"(max relative difference {worst:.3g})"
            )
            if self.on_divergence == "raise":
                raise LRDivergenceError(msg)
            if self.on_divergence == "warn":
                warnings.warn(msg + "; overwritten with the source's", stacklevel=3)
        momenta = None
        if has_momentum:
            src_m = view[_HEADER + self._capacity : _HEADER + self._capacity + n].tolist()
            momenta = [src_m[i] for i in self._index]
        s.write(step, lrs, momenta)
