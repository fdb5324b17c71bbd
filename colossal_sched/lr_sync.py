"""The lr sync: the source rank's lr, momentum and step on every rank, checked in one collective.

(The other cross-rank agreement, on checkpoint steps, is :mod:`colossal_sched.ckpt_agreement`; a new
check of what every rank holds at each update goes into the row in :mod:`colossal_sched.sync_protocol` and
:meth:`LRSync._verdict`.)

Every sync is one ``all_to_all_single`` of a small int64 vector on a gloo side group: each rank sends
every peer its requested global step, the step of its previous sync, its sync counter, the
fingerprint of its schedule, its layout key, and its lrs, momenta and base lrs (float64 bits, in the
source's group order). Every rank then holds the same table and reaches the same verdict, so a
refusal is raised by every rank of the group in the same sync, naming every disagreeing rank.
"""
from __future__ import annotations

import atexit
import contextlib
import math
import operator
import warnings
from datetime import timedelta
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist

from . import _validate as V
from .base import ClosedFormLR, group_names
from ._validate import MAX_FLOAT as _MAX_FLOAT
from .errors import (InvalidLRError, LayoutMismatchError, LRDivergenceWarning, LRDivergenceError,
                     MetricError, ReplanError, ScheduleMismatchError, SyncSequenceError)
from .teardown import close_at_exit
from .sync_protocol import (
    _FINGERPRINT, _HAS_METRIC, _HAS_MOMENTUM, _HEADER, _LAYOUT, _METRIC, _PLATEAU, _PREV, _REFUSAL_FLAGS, _REFUSALS, _REFUSED, _SAMPLES,
    _SAMPLES_SHARE, _SEQ, _STEP, _SYNC_EVERY, _UNKNOWN, _WARN_IS_ERROR, MIN_TIMEOUT, ON_DIVERGENCE,
    RELATIVE_TOLERANCE, Disagreement, agreed_clock, agreed_metric, LocalFailure, StepRefusal, SyncOptions, _divergence_message, _layout_key,
    _dp_partition, _spec_diffs, _warning_is_error, _WarningRaised, dp_ranks, group_layout, layout_problem, resolve_ranks, union_layout,
)

_retired: list[Any] = []  # side groups of closed syncs, destroyed at interpreter exit


def _destroy_retired() -> None:
    for group in _retired if dist.is_initialized() else []:  # else torch destroyed every group with the default one
        with contextlib.suppress(ValueError):  # destroyed already
            dist.destroy_process_group(group)
    _retired.clear()


atexit.register(_destroy_retired)  # at import, so it runs after every sync's own close at exit (callbacks run LIFO)


class LRSync:
    """Keep every rank of a group on the source rank's step, lrs and momenta, and refuse what cannot be fixed.

    At connection (construction), one ``all_gather_object`` exchanges each rank's param-group layout,
    schedule spec and base lrs: unmatched layouts raise :class:`~colossal_sched.errors.LayoutMismatchError`,
    another schedule :class:`~colossal_sched.errors.ScheduleMismatchError`, on every rank. Each :meth:`sync`
    is one ``all_to_all_single`` on a gloo group created once with ``timeout``; the checks it makes, in
    order, and what ``on_divergence`` does are README's "Cross-rank agreement". :meth:`close` (also run at
    interpreter exit) tears the side group down, so no gloo thread outlives the interpreter.

    Args:
        scheduler (ClosedFormLR): The scheduler whose schedule is checked at connection.
        options (SyncOptions): Group, ``on_divergence``, ``timeout`` and ``sync_every``.
    """

    def __init__(self, scheduler: ClosedFormLR, options: SyncOptions = SyncOptions()) -> None:
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("LRSync needs torch.distributed initialised (torchrun, init_process_group)")
        if not isinstance(scheduler, ClosedFormLR):
            raise V.ArgumentTypeError(f"scheduler must be a colossal_sched scheduler, got {type(scheduler).__name__}")
        if not isinstance(options, SyncOptions):
            raise V.ArgumentTypeError(f"options must be a SyncOptions, got {type(options).__name__}")
        self.on_divergence, self.timeout, self.sync_every = options.on_divergence, options.timeout, options.sync_every
        self.metric_op, self.nonfinite_metric = options.metric_op, options.nonfinite_metric
        self.ranks, self.src = resolve_ranks(options.group)
        self.rank = dist.get_rank()
        self.process_group: Any = dist.new_group(self.ranks, backend="gloo", timeout=timedelta(seconds=self.timeout),
                                                 use_local_synchronization=True)
        self._close_at_exit = close_at_exit(self.close)
        self.syncs = 0
        self.divergences = 0  # syncs in which this rank was off the source
        self.fixes = 0  # ... and adopted the source's step and lrs ("fix" and "warn")
        self.warnings = 0  # ... and warned ("warn")
        self.disagreements = 0  # syncs in which any rank of the group was off the source
        self.last_disagreement: Disagreement | None = None
        self._prev_request = _UNKNOWN
        self._pending: tuple[Any, int, Exception | None] | None = None
        self.agreed = (0, 0, False)  # what the last sync's update consumed (dp sums) and whether it was skipped
        self.metric: float | None = None  # the last sync's metric, reduced over the source's dp group (None: none given)
        self._connect(scheduler, options)

    # ------------------------------------------------------------ connection
    def _connect(self, s: ClosedFormLR, sync_options: SyncOptions) -> None:
        layout = group_layout(s.optimizer)
        options = {"on_divergence": self.on_divergence, "sync_every": self.sync_every, "metric_op": self.metric_op,
                   "nonfinite_metric": self.nonfinite_metric}
        try:  # refused on every rank below, never raised here alone
            dp, problem = dp_ranks(sync_options.dp_group, sync_options.group), layout_problem(s.optimizer)
        except Exception as e:
            dp, problem = None, f"{type(e).__name__}: {e}"
        mine = {"layout": layout, "problem": problem, "options": options, "dp": dp, **_schedule(s)}
        everyone: list[Any] = [None] * len(self.ranks)
        dist.all_gather_object(everyone, mine, group=self.process_group)
        bad = [(r, e["problem"]) for r, e in zip(self.ranks, everyone) if e["problem"]]
        if bad:
            raise LayoutMismatchError("; ".join(f"rank {r}: {p}" for r, p in bad) + " (names must be unique and non-empty)")
        self._dp_groups = _dp_partition(self.ranks, [e["dp"] for e in everyone])
        self._i_src = i_src = self.ranks.index(self.src)
        self._order = [i_src] + [i for i in range(len(self.ranks)) if i != i_src]  # the source first: references
        theirs = everyone[i_src]["options"]
        other = [(f"rank {r} {k}", theirs[k], v) for r, e in zip(self.ranks, everyone) for k, v in e["options"].items()
                 if v != theirs[k]]
        if other:
            text = "; ".join(f"{name}: source={a!r}, rank={b!r}" for name, a, b in other)
            raise ScheduleMismatchError(other, hint="configure every rank's hook alike").with_message(
                f"ranks configured the lr sync differently from source rank {self.src} (a configuration error; every "
                f"rank must pass the same on_divergence, sync_every, metric_op and nonfinite_metric): {text}")
        layouts = [e["layout"] for e in everyone]
        union = union_layout(layouts, i_src)
        if union is None:
            detail = "; ".join(f"rank {r}: {lay}" for r, lay in zip(self.ranks, layouts) if lay != layouts[i_src])
            raise LayoutMismatchError(
                f"param groups cannot be matched to source rank {self.src}'s layout {layouts[i_src]}: {detail} "
                "(give the groups a 'name' so stages holding different groups can be matched by name)"
            )
        self._holder = np.array([next(i for i in self._order if k in layouts[i]) for k in union])  # first holders
        self._check_specs([e["spec"] for e in everyone], [e["base"] for e in everyone])
        self.layout = union
        self._index = [union.index(k) for k in layout]
        self._layout_key = _layout_key(union)
        self._cycles_momentum = s.momentum_at(0) is not None
        self._deferred: Exception | None = None  # a failure after a sync on this rank: refused at the next sync
        n = len(union)
        self._row = _HEADER + 3 * n
        self._send = torch.zeros(len(self.ranks) * self._row, dtype=torch.int64)
        self._recv = torch.zeros_like(self._send)
        self._table = self._recv.numpy().reshape(len(self.ranks), self._row)
        self._rows = self._send.numpy().reshape(len(self.ranks), self._row)
        self._mine = np.zeros(self._row, dtype=np.int64)
        self._floats = self._mine[_HEADER:].view(np.float64)  # lrs, momenta, base lrs: written in place
        self._metric_word = self._mine[_METRIC:_METRIC + 1].view(np.float64)
        index = np.array(self._index, dtype=np.int64)
        self._slots = (index, n + index, 2 * n + index)
        self._my_layout = layout
        self._my_names = group_names(s.optimizer)
        # what a row holds where every rank agrees: each group's value is its holder's, NaN where not held
        held = np.array([[k in lay for k in union] for lay in layouts])
        self._held = held
        self._ref_rows = np.tile(self._holder, 3)
        self._ref_cols = np.arange(_HEADER, self._row)
        self._held_cols = np.concatenate([held] * 3, axis=1)
        self._uniform = all(lay == layouts[i_src] for lay in layouts)  # one layout, in one order, everywhere

    def _check_specs(self, specs: list[Any], bases: list[dict[str, float]]) -> None:
        """ScheduleMismatchError on every rank if any rank's schedule or matched base lr differs from the source's."""
        i_src = self._i_src
        first: dict[str, tuple[int, float]] = {}  # each group's reference base lr: the source's, else the first holder's
        for i in self._order:
            for key, lr in bases[i].items():
                first.setdefault(key, (self.ranks[i], lr))
        fields = []
        for r, spec, base in zip(self.ranks, specs, bases):
            for name, theirs, ours in _spec_diffs(specs[i_src], spec):
                fields.append((f"rank {r} {name}", theirs, ours))
            for key, lr in base.items():
                if first[key][1] != lr:
                    fields.append((f"rank {r} base_lr[{key}] (reference rank {first[key][0]})", first[key][1], lr))
        if fields:
            ranks = sorted({int(f[0].split()[1]) for f in fields})
            text = "; ".join(f"{n}: source={V.short(a, 80)}, rank={V.short(b, 80)}" for n, a, b in fields[:12])
            more = f"; and {len(fields) - 12} more" if len(fields) > 12 else ""
            raise ScheduleMismatchError(fields, hint="build the same schedule on every rank").with_message(
                f"ranks {ranks} built another schedule than source rank {self.src} (a configuration error, never fixed): "
                f"{text}{more}"
            )

    # ------------------------------------------------------------------ sync
    def sync(self, s: ClosedFormLR, requested: int, refusal: Exception | None = None, async_op: bool = False,
             progress: tuple[int, ...] = (0, 0, 0, 0, 0, 0), metric: float | None = None) -> int | None:
        """Agree with the group on the update ``requested`` (this rank's global step, which ``s`` holds).

        One collective. Returns the step ``s`` holds afterwards (the source's, where this rank was fixed);
        with ``async_op`` it returns None at once and :meth:`finish` (which every rank must call before its
        next sync) waits and applies the verdict, so the collective overlaps the caller's work.
        ``refusal``: this rank refuses a change the group makes together (a re-plan, its own invalid step,
        or a failure before the sync); every rank then raises (:class:`~colossal_sched.errors.ReplanError`,
        ``ValueError`` for a step, ``RuntimeError`` for a failure) naming the refusing ranks. ``progress``: the
        caller's clock before this update (samples, tokens, skipped updates: equal on every rank, else
        :class:`~colossal_sched.errors.ClockMismatchError` on every rank), whether the update was skipped (likewise),
        and this rank's shares of the samples and tokens it consumed; their sums over each data-parallel group must
        be equal, and are :attr:`agreed` after the verdict. ``metric``: this rank's value for a plateau (every rank
        gives one, or none); reduced over the source's data-parallel group (``metric_op``), it is :attr:`metric`.
        """
        if self.process_group is None:
            raise RuntimeError("the lr sync was closed (LRSync.close, or the hook's close): no more syncs")
        if self._deferred is not None and refusal is None:
            refusal, self._deferred = self._deferred, None
        head = [0] * _HEADER
        head[_STEP], head[_PREV], head[_SEQ] = requested, self._prev_request, self.syncs
        head[_LAYOUT], head[_SYNC_EVERY], head[_HAS_MOMENTUM] = self._layout_key, self.sync_every, self._cycles_momentum
        head[_SAMPLES:_HAS_METRIC] = progress
        head[_HAS_METRIC] = metric is not None
        try:  # what this rank holds; a failure to read it is refused on every rank, never raised here alone
            fingerprint = s.fingerprint()
            value = None if isinstance(fingerprint, bool) else operator.index(fingerprint)
            if value is None or not -(2**63) <= value < 2**63:
                raise ValueError(f"fingerprint() must return an int64, got {fingerprint!r}")
            head[_FINGERPRINT] = value
            plateau = getattr(s, "plateau", None)
            head[_PLATEAU] = 0 if plateau is None else plateau.digest()
            head[_WARN_IS_ERROR] = self.on_divergence == "warn" and _warning_is_error(self.rank, requested, self.src)
            if not self._read_values(s):
                head[_LAYOUT] = -1  # the param groups changed since the connection
        except Exception as e:
            refusal = refusal or LocalFailure(f"reading this rank's schedule and lrs for the sync failed: {type(e).__name__}: {e}")
            self._floats[:] = np.nan
        head[_REFUSED] = 0 if refusal is None else _REFUSAL_FLAGS.get(type(refusal), _REFUSAL_FLAGS[None])
        self._mine[:_HEADER] = head
        if metric is not None:
            self._metric_word[0] = metric  # its float64 bits, in place
        self._rows[:] = self._mine
        work = dist.all_to_all_single(self._recv, self._send, group=self.process_group, async_op=async_op)
        self.syncs += 1
        self._prev_request = requested
        self._pending = (work, requested, refusal)
        return None if async_op else self.finish(s)

    def _read_values(self, s: ClosedFormLR) -> bool:
        """Write this rank's lrs, momenta and base lrs into its row (NaN where it holds no group); False
        where its param groups changed since the connection."""
        floats, (lr_at, mom_at, base_at) = self._floats, self._slots
        groups = s.optimizer.param_groups
        floats[:] = np.nan
        if len(groups) != len(self._index) or (
            [g.get("name") for g in groups] != self._my_names and group_layout(s.optimizer) != self._my_layout
        ):
            return False
        lrs = _held_values([g["lr"] for g in groups], s.get_last_lr)
        moms = _momenta(groups, s) if self._cycles_momentum else [math.nan] * len(groups)
        if self._uniform:  # every rank holds the groups in the common order
            floats[:] = [*lrs, *moms, *s.base_lrs]
        else:
            floats[lr_at], floats[mom_at], floats[base_at] = lrs, moms, list(s.base_lrs)
        return True

    @property
    def pending(self) -> bool:
        """Whether a sync started with ``async_op=True`` awaits :meth:`finish`."""
        return self._pending is not None

    def finish(self, s: ClosedFormLR) -> int:
        """Wait for the pending sync (a dead peer raises after ``timeout``) and apply the group's verdict;
        returns the step ``s`` holds afterwards, as :meth:`sync` does."""
        work, requested, refusal = self._pending
        self._pending = None
        if work is not None:
            work.wait()
        return self._verdict(s, requested, refusal)

    def defer(self, refusal: Exception) -> None:
        """Refuse at this rank's next sync (every rank raises there): for a failure after a sync that this
        rank alone would otherwise raise, e.g. rank 0's logging."""
        self._deferred = self._deferred or refusal

    def close(self) -> None:
        """Wait for a sync in flight (its verdict is dropped); no sync after it. The side group is destroyed at
        interpreter exit, not sooner: a later sync of the same ranks gets a group of the same name, which must not
        find a destroyed one's addresses in the store. Idempotent; runs at interpreter exit by itself."""
        atexit.unregister(self._close_at_exit)
        pending, self._pending = self._pending, None
        group, self.process_group = self.process_group, None
        if group is None:
            return
        try:
            if pending is not None and pending[0] is not None:
                pending[0].wait()
        except Exception:  # a peer gone at exit: nothing left to agree on
            pass
        finally:
            _retired.append(group)

    def reset_sequence(self) -> None:
        """Forget the previous sync's step (after a resume: the step may jump; every rank resumes alike)."""
        self._prev_request = _UNKNOWN

    def _verdict(self, s: ClosedFormLR, requested: int, refusal: Exception | None) -> int:
        table, ranks, n, i_src = self._table, self.ranks, len(self.layout), self._i_src
        src = table[i_src]
        if not src[_REFUSED] and src[_LAYOUT] == self._layout_key and (table[:, :_SAMPLES_SHARE] == src[:_SAMPLES_SHARE]).all() and (
            (table[:, _HEADER:] == src[_HEADER:]).all() if self._uniform
            else ((table[:, _HEADER:] == table[self._ref_rows, self._ref_cols]) | ~self._held_cols).all()
        ):  # every rank agrees (the fast path: no Python loop; with one layout everywhere, every row is the source's)
            self._agree(table)
            return requested
        if (table[:, _LAYOUT] != self._layout_key).any():
            bad = [r for r, row in zip(ranks, table) if row[_LAYOUT] != self._layout_key]
            raise LayoutMismatchError(
                f"ranks {bad}: param groups changed since the lr sync connected (the group's layout {self.layout}); "
                "build the hook again on every rank after changing param groups"
            )
        if table[:, _REFUSED].any():  # every refusing rank named under its reason; the first reason's error type
            why = f"; rank {self.rank}: {V.short(str(refusal), 300)}" if refusal is not None else ""
            parts = [(error, f"ranks {who} {text}") for flag, (_, error, text) in enumerate(_REFUSALS, 1)
                     if (who := [r for r, row in zip(ranks, table) if row[_REFUSED] == flag])]
            error = parts[0][0]
            text = "; ".join(p for _, p in parts) + (", so no rank applies it" if error is ReplanError else ", so no rank goes on")
            raise error(text + why) from (refusal if error is RuntimeError else None)
        if (table[:, _FINGERPRINT] != src[_FINGERPRINT]).any():
            self._fingerprint_mismatch(s)
        floats = table[:, _HEADER:].view(np.float64)
        held = self._held
        ref = np.arange(n)
        ref_base = floats[self._holder, 2 * n + ref]
        if (held & (floats[:, 2 * n :] != ref_base)).any():
            self._fingerprint_mismatch(s)
        if (table[:, _SEQ] != src[_SEQ]).any():
            detail = "; ".join(
                f"rank {r} has synced {row[_SEQ]} time(s), source rank {self.src} {src[_SEQ]}: rank {r} is "
                f"{'behind' if row[_SEQ] < src[_SEQ] else 'ahead'} by {abs(int(row[_SEQ] - src[_SEQ]))} sync(s)"
                for r, row in zip(ranks, table) if row[_SEQ] != src[_SEQ]
            )
            raise SyncSequenceError(f"sync sequence mismatch (a rank skipped or added syncs): {detail}")
        if (table[:, _PLATEAU] != src[_PLATEAU]).any():
            off = [r for r, row in zip(ranks, table) if row[_PLATEAU] != src[_PLATEAU]]
            raise MetricError(f"ranks {off} hold other plateau decisions (best, bad epochs, cooldown, levels, metrics "
                              f"seen) than source rank {self.src}: a metric observed outside the hook, or another "
                              "checkpoint loaded; every rank must observe the same metrics (hook.step(..., metric=))")
        self._agree(table)
        steps = table[:, _STEP]
        if (steps != src[_STEP]).any() and (table[:, _PREV] != _UNKNOWN).all():
            self._check_sequence(table, i_src)
        lrs, moms = floats[:, :n], floats[:, n : 2 * n]
        holder = self._holder.copy()  # a group's reference: its first holder at the source's step, if any
        at_src = steps == src[_STEP]
        for j in np.flatnonzero(~at_src[holder]):
            on_time = [i for i in self._order if held[i, j] and at_src[i]]
            holder[j] = on_time[0] if on_time else holder[j]
        ref_lrs, ref_moms = lrs[holder, ref], moms[holder, ref]
        off = []
        for k, (r, row) in enumerate(zip(ranks, table)):
            mask = held[k] & (holder != k)
            worst = _relative(lrs[k][mask], ref_lrs[mask])
            if self._cycles_momentum:
                worst = max(worst, _relative(moms[k][mask], ref_moms[mask]))
            if row[_STEP] != src[_STEP] or worst > RELATIVE_TOLERANCE:
                off.append((k, r, worst))
        if not off:
            return requested
        given = held[i_src] | at_src[holder]  # a value to adopt (the source's, else its reference holder's)
        adopt = np.where(held[i_src], lrs[i_src], ref_lrs)
        adopt_m = np.where(held[i_src], moms[i_src], ref_moms)
        return self._disagree(s, requested, table, off, i_src, lrs, adopt, adopt_m, given)

    def _agree(self, table: np.ndarray) -> None:
        """Set :attr:`agreed` (the clock) and :attr:`metric`, or raise on every rank (:mod:`~colossal_sched.sync_protocol`)."""
        self.agreed = agreed_clock(table, self.ranks, self._i_src, self._dp_groups)
        self.metric = agreed_metric(table, self.ranks, self._i_src, self._dp_groups, self.metric_op, self.nonfinite_metric)

    def _check_sequence(self, table: np.ndarray, i_src: int) -> None:
        """SyncSequenceError where a rank's step moved by another amount since its previous sync than the others'."""
        jumps = table[:, _STEP] - table[:, _PREV]
        if not (jumps != jumps[i_src]).any():
            return
        values, counts = np.unique(jumps, return_counts=True)
        ref = jumps[i_src] if counts.max() == counts[values == jumps[i_src]][0] else values[counts.argmax()]
        every = int(table[i_src, _SYNC_EVERY])
        detail = "; ".join(
            f"rank {r} is {'behind' if j > ref else 'ahead'} by {max(abs(int(j - ref)) // every, 1)} sync(s) "
            f"(its step {int(row[_STEP])} follows its previous sync at {int(row[_PREV])})"
            for r, row, j in zip(self.ranks, table, jumps) if j != ref
        )
        raise SyncSequenceError(
            f"a rank skipped or added a sync call, so the syncs cannot be paired (the others moved {int(ref)} "
            f"step(s) since their previous sync): {detail}"
        )

    def _disagree(self, s: ClosedFormLR, requested: int, table: np.ndarray, off: list, i_src: int,
                  lrs: np.ndarray, new_lrs: np.ndarray, new_moms: np.ndarray, given: np.ndarray) -> int:
        """Some ranks are off the source: the same verdict on every rank. A fixed rank adopts the source's step
        and ``new_lrs``/``new_moms`` per group of the common layout: the source's values, else those of the
        group's reference rank at the source's step, else (``given`` False: no holder is) its closed form at that
        step. A value to adopt that is not a valid lr or momentum (NaN included) is refused on every rank."""
        src, held = table[i_src], self._held
        src_lrs = lrs[i_src][held[i_src]].tolist()
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
        step = int(src[_STEP])
        # what a fixed rank will write, checked on every rank alike (the same table), so a refusal is collective
        bad_src = [f"lr[{self.layout[j]}]={new_lrs[j]}" for j in np.flatnonzero(given)
                   if not 0.0 <= new_lrs[j] <= _MAX_FLOAT] + [
                   f"momentum[{self.layout[j]}]={new_moms[j]}" for j in np.flatnonzero(given)
                   if self._cycles_momentum and not 0.0 <= new_moms[j] < 1.0]
        mine = [k for k, r, _ in off if r == self.rank]
        if mine:
            self.divergences += 1
        if self.on_divergence == "raise":
            raise LRDivergenceError(message + ' (on_divergence="raise")')
        if bad_src:
            raise InvalidLRError(message + f"; the values to adopt {', '.join(bad_src)} (the source's, or a group's "
                                 "reference holder's) are not a valid lr/momentum, so no rank adopts them")
        if self.on_divergence == "warn":
            loud = [r for k, r, _ in off if table[k, _WARN_IS_ERROR]]
            if loud:  # a rank whose filters turn the warning into an exception: every rank raises together
                raise LRDivergenceError(message + f' (on_divergence="warn", and ranks {loud} turn warnings into errors)')
        if not mine:
            return requested
        k = mine[0]
        ours = np.array(self._index)
        lrs_out = [float(v) for v in new_lrs[ours]]
        moms_out = [float(v) for v in new_moms[ours]] if self._cycles_momentum else None
        mine_given = given[ours].tolist()
        if not all(mine_given):  # no rank holding the group is at the source's step: its closed form there
            closed, closed_m = s.lr_at(step), s.momentum_at(step)
            lrs_out = [v if ok else c for v, c, ok in zip(lrs_out, closed, mine_given)]
            if moms_out is not None:
                moms_out = [v if ok else c for v, c, ok in zip(moms_out, closed_m, mine_given)]
        s.write(step, lrs_out, moms_out)
        self.fixes += 1
        if self.on_divergence == "warn":
            self.warnings += 1
            worst = [w for kk, _, w in off if kk == k][0]
            try:
                warnings.warn(_divergence_message(self.rank, int(table[k, _STEP]), lrs[k][held[k]].tolist(), self.src,
                                                  step, lrs_out, worst), LRDivergenceWarning, stacklevel=2)
            except Warning as w:  # a filter the probe did not foresee: refused on every rank at the next sync
                self.defer(_WarningRaised(str(w)))
        return step

    def _fingerprint_mismatch(self, s: ClosedFormLR) -> None:
        """Every rank is here together: gather the specs (a second collective, on this failure path only) and raise."""
        everyone: list[Any] = [None] * len(self.ranks)
        dist.all_gather_object(everyone, _schedule(s), group=self.process_group)
        self._check_specs([e["spec"] for e in everyone], [e["base"] for e in everyone])
        fps = self._table[:, _FINGERPRINT]
        i_src = self._i_src
        ranks = [r for r, fp in zip(self.ranks, fps) if fp != fps[i_src]]
        raise ScheduleMismatchError([("fingerprint", int(fps[i_src]), ranks)]).with_message(
            f"ranks {ranks} synced another schedule fingerprint than source rank {self.src}, although their schedule "
            "specs and base lrs now compare equal (a schedule changed during the sync?)"
        )


def _schedule(s: ClosedFormLR) -> dict[str, Any]:
    """What ranks compare at connection, and again where fingerprints differ: the spec and each group's base lr."""
    return {"spec": s.schedule_spec(), "base": dict(zip(group_layout(s.optimizer), s.base_lrs))}


def _held_values(values: list[Any], scheduled: Callable[[], list[float]]) -> list[Any]:
    """What each param group holds: a CPU tensor is read, a device tensor is taken as the scheduler's
    value (``scheduled()``), so the sync adds no host-device synchronisation."""
    for i, v in enumerate(values):
        if isinstance(v, torch.Tensor):
            values[i] = float(v) if v.device.type == "cpu" and v.numel() == 1 else scheduled()[i]
    return values


def _momenta(groups: list[dict[str, Any]], s: ClosedFormLR) -> list[Any]:
    """The momentum each param group holds (``momentum``, or Adam's ``betas[0]``)."""
    return _held_values([g["betas"][0] if "betas" in g else g.get("momentum", math.nan) for g in groups],
                        lambda: s.momentum_at(s.last_epoch))


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    """The largest relative difference of ``a`` from ``b`` (inf where one is NaN and the other is not)."""
    if a.size == 0:
        return 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.abs(a - b) / np.maximum(np.abs(b), 1e-300)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return float(np.where(same, 0.0, np.nan_to_num(d, nan=np.inf)).max())


__all__ = ["LRSync", "SyncOptions", "Disagreement", "StepRefusal", "LocalFailure", "ON_DIVERGENCE", "MIN_TIMEOUT",
           "RELATIVE_TOLERANCE", "resolve_ranks", "group_layout", "layout_problem", "union_layout"]
