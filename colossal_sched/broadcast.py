"""Cross-rank agreement: the source rank's lr, momentum and step on every rank, checked in one collective.

Every sync is one ``all_to_all_single`` of a small int64 vector on a gloo side group: each rank sends
every peer its requested global step, the step of its previous sync, its sync counter, the
fingerprint of its schedule, its layout key, and its lrs, momenta and base lrs (float64 bits, in the
source's group order). Every rank then holds the same table and reaches the same verdict, so a
refusal is raised by every rank of the group in the same sync, naming every disagreeing rank.
"""
from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist

from . import _validate as V
from .base import ClosedFormLR, group_names
from .errors import LayoutMismatchError, LRDivergenceError, ReplanError, ScheduleMismatchError, SyncSequenceError

ON_DIVERGENCE = ("fix", "warn", "raise")
RELATIVE_TOLERANCE = 1e-12
MIN_TIMEOUT = 0.001

# one row of the sync table: header words, then ``n`` lrs, ``n`` momenta and ``n`` base lrs as float64 bits
_STEP, _PREV, _SEQ, _FINGERPRINT, _LAYOUT, _SYNC_EVERY, _HAS_MOMENTUM, _REFUSED = range(8)
_HEADER = 8
_REFUSED_REPLAN, _REFUSED_STEP = 1, 2


class _StepRefusal(ValueError):
    """This rank's ``hook.step`` argument was refused: told to the group so no peer waits for it."""


_UNKNOWN = -1  # no previous sync (first sync, or after a resume)


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


def layout_problem(optimizer: torch.optim.Optimizer) -> str | None:
    """Why the param-group names cannot be matched across ranks (duplicate or empty names), or None."""
    names = [n for n in group_names(optimizer) if n is not None]
    empty = [i for i, n in enumerate(group_names(optimizer)) if n is not None and str(n).strip() == ""]
    dups = sorted({str(n) for n in names if names.count(n) > 1})
    if empty:
        return f"param group(s) {empty} have an empty 'name'"
    if dups:
        return f"duplicate param group name(s) {dups}: each named group must have its own name"
    return None


def _layout_key(layout: Sequence[str]) -> int:
    return zlib.crc32("\x00".join(layout).encode())


def _match(mine: list[str], src: list[str]) -> list[int] | None:
    """Index into the source layout of each of my groups, or None where they cannot be matched."""
    if mine == src:
        return list(range(len(mine)))
    if all(not k.startswith("#") for k in mine) and set(mine) <= set(src):
        return [src.index(k) for k in mine]
    return None


def _spec_diffs(src: Any, mine: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(field, source value, this value)`` for every leaf where two schedule specs differ."""
    if isinstance(src, dict) and isinstance(mine, dict):
        out = []
        for k in sorted(set(src) | set(mine), key=str):
            out += _spec_diffs(src.get(k, "<missing>"), mine.get(k, "<missing>"), f"{prefix}{k}.")
        return out
    return [] if src == mine else [(prefix.rstrip(".").removeprefix("hyperparams."), src, mine)]


@dataclass
class Disagreement:
    """The last sync in which ranks were off the source (the same on every rank of the group)."""

    sync: int
    source: int
    ranks: list[int]
    steps: dict[int, int]
    lrs: dict[int, list[float]]
    action: str
    message: str


class LRBroadcaster:
    """Keep every rank of a group on the source rank's step, lrs and momenta, and refuse what cannot be fixed.

    At connection (construction), one ``all_gather_object`` exchanges each rank's param-group layout,
    schedule spec and base lrs; duplicate or empty group names and unmatched layouts raise
    :class:`~colossal_sched.errors.LayoutMismatchError`, a different schedule (class, any
    hyperparameter, a re-plan, the base lr of a matched group) raises
    :class:`~colossal_sched.errors.ScheduleMismatchError`, on every rank, whatever ``on_divergence``.

    Each :meth:`sync` is one ``all_to_all_single`` on a gloo group created once with ``timeout`` (an
    NCCL job adds no host-device synchronisation; a dead peer raises instead of hanging). Then, on
    every rank alike:

    * a different schedule fingerprint or layout: the errors above;
    * a different sync counter, or a rank whose step moved by another amount since its previous sync
      than the source's (a skipped or extra call): :class:`~colossal_sched.errors.SyncSequenceError`;
    * a different step, or an lr/momentum more than 1e-12 relative off the source's:
      ``on_divergence`` -- ``"fix"`` the rank adopts the source's step, lrs and momenta; ``"warn"`` also
      warns, naming rank, both steps and both lrs; ``"raise"`` :class:`~colossal_sched.errors.LRDivergenceError`.

    Args:
        scheduler (ClosedFormLR): The scheduler whose schedule is checked at connection.
        group: Which ranks (see :func:`resolve_ranks`).
        on_divergence (str): ``"fix"``, ``"warn"`` or ``"raise"``.
        timeout (float): Seconds (at least 0.001) before a collective with a dead peer raises.
        sync_every (int): The caller syncs on steps divisible by this (used to count skipped syncs).
    """

    def __init__(
        self,
        scheduler: ClosedFormLR,
        group: Any = None,
        *,
        on_divergence: str = "fix",
        timeout: float = 60.0,
        sync_every: int = 1,
    ) -> None:
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("LRBroadcaster needs torch.distributed initialised (torchrun, init_process_group)")
        if not isinstance(scheduler, ClosedFormLR):
            raise V.ArgumentTypeError(f"scheduler must be a colossal_sched scheduler, got {type(scheduler).__name__}")
        self.on_divergence = V.choice("on_divergence", on_divergence, ON_DIVERGENCE)
        self.timeout = V.real("timeout", timeout, low=MIN_TIMEOUT)
        self.sync_every = V.integer("sync_every", sync_every, 1)
        self.ranks, self.src = resolve_ranks(group)
        self.rank = dist.get_rank()
        self.process_group = dist.new_group(
            self.ranks, backend="gloo", timeout=timedelta(seconds=self.timeout), use_local_synchronization=True
        )
        self.syncs = 0
        self.divergences = 0  # syncs in which this rank was off the source
        self.fixes = 0  # ... and adopted the source's step and lrs ("fix" and "warn")
        self.warnings = 0  # ... and warned ("warn")
        self.disagreements = 0  # syncs in which any rank of the group was off the source
        self.last_disagreement: Disagreement | None = None
        self._prev_request = _UNKNOWN
        self._connect(scheduler)

    @property
    def collectives(self) -> int:
        """Collectives issued by :meth:`sync` (one per sync), for tests and benchmarks."""
        return self.syncs

    # ------------------------------------------------------------ connection
    def _connect(self, s: ClosedFormLR) -> None:
        layout = group_layout(s.optimizer)
        mine = {"layout": layout, "problem": layout_problem(s.optimizer), "spec": s.schedule_spec(),
                "base": dict(zip(layout, s.base_lrs))}
        everyone: list[Any] = [None] * len(self.ranks)
        dist.all_gather_object(everyone, mine, group=self.process_group)
        bad = [(r, e["problem"]) for r, e in zip(self.ranks, everyone) if e["problem"]]
        if bad:
            raise LayoutMismatchError("; ".join(f"rank {r}: {p}" for r, p in bad) + " (names must be unique and non-empty)")
        src = everyone[self.ranks.index(self.src)]
        unmatched = [(r, e["layout"]) for r, e in zip(self.ranks, everyone) if _match(e["layout"], src["layout"]) is None]
        if unmatched:
            detail = "; ".join(f"rank {r}: {lay}" for r, lay in unmatched)
            raise LayoutMismatchError(
                f"param groups cannot be matched to source rank {self.src}'s layout {src['layout']}: {detail} "
                "(give the groups a 'name' so stages holding a subset can be matched)"
            )
        self._check_specs([e["spec"] for e in everyone], [e["base"] for e in everyone])
        self.src_layout = src["layout"]
        self._index = _match(layout, self.src_layout)
        self._layout_key = _layout_key(self.src_layout)
        n = len(self.src_layout)
        self._row = _HEADER + 3 * n
        self._send = torch.zeros(len(self.ranks) * self._row, dtype=torch.int64)
        self._recv = torch.zeros_like(self._send)
        self._table = self._recv.numpy().reshape(len(self.ranks), self._row)
        self._rows = self._send.numpy().reshape(len(self.ranks), self._row)
        self._mine = np.zeros(self._row, dtype=np.int64)
        self._floats = self._mine[_HEADER:].view(np.float64)  # lrs, momenta, base lrs: written in place
        index = np.array(self._index, dtype=np.int64)
        self._slots = (index, n + index, 2 * n + index)
        self._my_layout = [self.src_layout[i] for i in self._index]

    def _check_specs(self, specs: list[Any], bases: list[dict[str, float]]) -> None:
        """ScheduleMismatchError on every rank if any rank's schedule or matched base lr differs from the source's."""
        i_src = self.ranks.index(self.src)
        fields = []
        for r, spec, base in zip(self.ranks, specs, bases):
            for name, theirs, ours in _spec_diffs(specs[i_src], spec):
                fields.append((f"rank {r} {name}", theirs, ours))
            for key, lr in base.items():
                if key in bases[i_src] and bases[i_src][key] != lr:
                    fields.append((f"rank {r} base_lr[{key}]", bases[i_src][key], lr))
        if fields:
            ranks = sorted({int(f[0].split()[1]) for f in fields})
            err = ScheduleMismatchError(fields, hint="build the same schedule on every rank")
            text = "; ".join(f"{n}: source={V.short(a, 80)}, rank={V.short(b, 80)}" for n, a, b in fields[:12])
            more = f"; and {len(fields) - 12} more" if len(fields) > 12 else ""
            err.args = (
                f"ranks {ranks} built another schedule than source rank {self.src} (a configuration error, never fixed): "
                f"{text}{more}",
            )
            raise err

    # ------------------------------------------------------------------ sync
    def sync(self, s: ClosedFormLR, requested: int, refusal: Exception | None = None) -> int:
        """Agree with the group on the update ``requested`` (this rank's global step, which ``s`` holds).

        One collective. Returns the step ``s`` holds afterwards (the source's, where this rank was fixed).
        ``refusal``: this rank refuses a change the group makes together (a re-plan, or its own invalid
        step); every rank then raises (:class:`~colossal_sched.errors.ReplanError`, or ``ValueError`` for a
        step) naming the refusing ranks.
        """
        row = self._mine
        row[_STEP], row[_PREV], row[_SEQ] = requested, self._prev_request, self.syncs
        row[_FINGERPRINT], row[_LAYOUT], row[_SYNC_EVERY] = s.fingerprint(), self._layout_key, self.sync_every
        momenta = s.momentum_at(s.last_epoch)
        row[_HAS_MOMENTUM] = momenta is not None
        row[_REFUSED] = 0 if refusal is None else (_REFUSED_STEP if isinstance(refusal, _StepRefusal) else _REFUSED_REPLAN)
        floats, (lr_at, mom_at, base_at) = self._floats, self._slots
        floats[:] = np.nan
        if len(s.optimizer.param_groups) == len(self._index) and group_layout(s.optimizer) == self._my_layout:
            floats[lr_at] = [  # what the optimizer will really use (a tensor lr: the scheduler's, no device sync)
                g["lr"] if not isinstance(g["lr"], torch.Tensor) else lr
                for g, lr in zip(s.optimizer.param_groups, s.get_last_lr())
            ]
            if momenta is not None:
                floats[mom_at] = momenta
            floats[base_at] = s.base_lrs
        else:
            row[_LAYOUT] = -1  # the param groups changed since the connection
        self._rows[:] = row
        dist.all_to_all_single(self._recv, self._send, group=self.process_group)
        self.syncs += 1
        self._prev_request = requested
        return self._verdict(s, requested, refusal)

    def reset_sequence(self) -> None:
        """Forget the previous sync's step (after a resume: the step may jump; every rank resumes alike)."""
        self._prev_request = _UNKNOWN

    def _verdict(self, s: ClosedFormLR, requested: int, refusal: Exception | None) -> int:
        table, ranks, n = self._table, self.ranks, len(self.src_layout)
        i_src = ranks.index(self.src)
        src = table[i_src]
        if not src[_REFUSED] and src[_LAYOUT] == self._layout_key and (table == src).all():  # all agree
            return requested
        if table[:, _REFUSED].any():
            refused = [r for r, row in zip(ranks, table) if row[_REFUSED]]
            why = f"; rank {self.rank}: {V.short(str(refusal), 300)}" if refusal is not None else ""
            if (table[:, _REFUSED] == _REFUSED_STEP).any():
                raise ValueError(f"ranks {refused} were given an invalid global_step, so no rank goes on{why}")
            raise ReplanError(f"ranks {refused} refused the re-plan, so no rank applies it{why}")
        if (table[:, _LAYOUT] != src[_LAYOUT]).any() or src[_LAYOUT] != self._layout_key:
            bad = [r for r, row in zip(ranks, table) if row[_LAYOUT] != self._layout_key]
            raise LayoutMismatchError(
                f"ranks {bad}: param groups changed since the broadcaster connected (source rank {self.src}'s layout "
                f"{self.src_layout}; rank {self.rank} holds {group_layout(s.optimizer)})"
            )
        if (table[:, _FINGERPRINT] != src[_FINGERPRINT]).any():
            self._fingerprint_mismatch(s)
        floats = table[:, _HEADER:].view(np.float64)
        base = floats[:, 2 * n :]
        held = ~np.isnan(base)
        if (held & (base != base[i_src])).any():
            self._fingerprint_mismatch(s)
        if (table[:, _SEQ] != src[_SEQ]).any():
            detail = "; ".join(
                f"rank {r} has synced {row[_SEQ]} time(s), source rank {self.src} {src[_SEQ]}: rank {r} is "
                f"{'behind' if row[_SEQ] < src[_SEQ] else 'ahead'} by {abs(int(row[_SEQ] - src[_SEQ]))} sync(s)"
                for r, row in zip(ranks, table) if row[_SEQ] != src[_SEQ]
            )
            raise SyncSequenceError(f"sync sequence mismatch (a rank built its hook again or skipped syncs): {detail}")
        steps = table[:, _STEP]
        if (steps != src[_STEP]).any() and (table[:, _PREV] != _UNKNOWN).all():
            jumps = steps - table[:, _PREV]
            if (jumps != jumps[i_src]).any():
                values, counts = np.unique(jumps, return_counts=True)
                ref = jumps[i_src] if counts.max() == counts[values == jumps[i_src]][0] else values[counts.argmax()]
                every = int(src[_SYNC_EVERY])
                detail = "; ".join(
                    f"rank {r} is {'behind' if j > ref else 'ahead'} by {max(abs(int(j - ref)) // every, 1)} sync(s) "
                    f"(its step {int(row[_STEP])} follows its previous sync at {int(row[_PREV])})"
                    for r, row, j in zip(ranks, table, jumps) if j != ref
                )
                raise SyncSequenceError(
                    f"a rank skipped or added a sync call, so the syncs cannot be paired (the others moved {int(ref)} "
                    f"step(s) since their previous sync): {detail}"
                )
        lrs, moms = floats[:, :n], floats[:, n : 2 * n]
        off = []
        for k, (r, row) in enumerate(zip(ranks, table)):
            if k == i_src:
                continue
            mask = held[k]
            worst = _relative(lrs[k][mask], lrs[i_src][mask])
            if bool(row[_HAS_MOMENTUM]) and bool(src[_HAS_MOMENTUM]):
                worst = max(worst, _relative(moms[k][mask], moms[i_src][mask]))
            if row[_STEP] != src[_STEP] or worst > RELATIVE_TOLERANCE:
                off.append((k, r, worst))
        if not off:
            return requested
        src_lrs = lrs[i_src].tolist()
        self.disagreements += 1
        parts = [
            f"rank {r} at step {int(table[k, _STEP])} with lr {lrs[k][held[k]].tolist()}"
            + (f" (max relative difference {w:.3g})" if w > RELATIVE_TOLERANCE else "")
            for k, r, w in off
        ]
        message = (f"ranks {[r for _, r, _ in off]} disagree with source rank {self.src} (step {int(src[_STEP])}, "
                   f"lr {src_lrs}): " + "; ".join(parts))
        self.last_disagreement = Disagreement(
            sync=self.syncs, source=self.src, ranks=[r for _, r, _ in off],
            steps={self.src: int(src[_STEP]), **{r: int(table[k, _STEP]) for k, r, _ in off}},
            lrs={self.src: src_lrs, **{r: lrs[k][held[k]].tolist() for k, r, _ in off}},
            action=self.on_divergence, message=message,
        )
        mine = [k for k, r, _ in off if r == self.rank]
        if mine:
            self.divergences += 1
        if self.on_divergence == "raise":
            raise LRDivergenceError(message + ' (on_divergence="raise")')
        if not mine:
            return requested
        k = mine[0]
        step = int(src[_STEP])
        new_lrs = [src_lrs[i] for i in self._index]
        new_moms = [float(moms[i_src][i]) for i in self._index] if bool(src[_HAS_MOMENTUM]) else None
        if self.on_divergence == "warn":
            self.warnings += 1
            worst = [w for kk, _, w in off if kk == k][0]
            warnings.warn(
                f"rank {self.rank}: step {int(table[k, _STEP])} with lr {lrs[k][held[k]].tolist()} differs from source "
                f"rank {self.src}'s step {step} with lr {new_lrs} (max relative difference {worst:.3g}); "
                "overwritten with the source's",
                stacklevel=4,
            )
        self.fixes += 1
        s.write(step, new_lrs, new_moms)
        return step

    def _fingerprint_mismatch(self, s: ClosedFormLR) -> None:
        """Every rank is here together: gather the specs (a second collective, on this failure path only) and raise."""
        everyone: list[Any] = [None] * len(self.ranks)
        dist.all_gather_object(everyone, {"spec": s.schedule_spec(), "base": dict(zip(group_layout(s.optimizer), s.base_lrs))},
                               group=self.process_group)
        self._check_specs([e["spec"] for e in everyone], [e["base"] for e in everyone])
        raise ScheduleMismatchError([("fingerprint", "source", "rank")], hint="schedules differ across ranks")


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0:
        return 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.abs(a - b) / np.maximum(np.abs(b), 1e-300)
    return float(np.nanmax(np.where(a == b, 0.0, d)))
