"""What the lr sync (:mod:`colossal_sched.lr_sync`) agrees on: its options, the refusal kinds, the row each
rank sends, and how param-group layouts are matched across ranks.

A new check of what every rank holds at each update adds a word to the row here and its verdict to
:meth:`colossal_sched.lr_sync.LRSync._verdict`.
"""
from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist

from . import _validate as V
from .base import group_names
from .clock import MAX_COUNT
from .errors import ClockMismatchError, LayoutMismatchError, LRDivergenceError, LRDivergenceWarning, MetricError, ReplanError

ON_DIVERGENCE = ("fix", "warn", "raise")
RELATIVE_TOLERANCE = 1e-12
MIN_TIMEOUT = 0.001

# one row of the sync table: header words, then ``n`` lrs, ``n`` momenta and ``n`` base lrs as float64 bits; the
# digest of what a plateau has decided (0 without one); the clock's words: its totals before this update (equal
# on every rank), whether the update was skipped, and this rank's shares of what it consumed; then whether this
# rank gives a metric and its value (float64 bits). From the shares on, words differ between agreeing ranks.
(_STEP, _PREV, _SEQ, _FINGERPRINT, _LAYOUT, _SYNC_EVERY, _HAS_MOMENTUM, _REFUSED, _WARN_IS_ERROR, _PLATEAU,
 _SAMPLES, _TOKENS, _SKIPPED, _SKIP, _SAMPLES_SHARE, _TOKENS_SHARE, _HAS_METRIC, _METRIC) = range(18)
_HEADER = 18
METRIC_OPS = ("mean", "sum", "min", "max")
NONFINITE_METRIC = ("refuse", "skip")


class StepRefusal(ValueError):
    """A refusal to pass to :meth:`LRSync.sync`: this rank's global step is invalid (every rank raises ``ValueError``)."""


class MetricRefusal(ValueError):
    """A refusal to pass to :meth:`LRSync.sync`: this rank's metric cannot be observed (every rank raises
    :class:`~colossal_sched.errors.MetricError`)."""


class LocalFailure(RuntimeError):
    """A refusal to pass to :meth:`LRSync.sync` or :meth:`LRSync.defer`: this rank failed around a sync (e.g. its
    scheduler could not step, its logging raised); every rank raises ``RuntimeError``."""


def _divergence_message(rank: int, step: int, lrs: Any, src: int, src_step: int, src_lrs: Any, worst: float) -> str:
    return (f"rank {rank}: step {step} with lr {lrs} differs from source rank {src}'s step {src_step} with lr {src_lrs} "
            f"(max relative difference {worst:.3g}); overwritten with the source's")


def _warning_is_error(rank: int, step: int, src: int) -> bool:
    """Whether this process's warning filters (as they are now) turn a divergence warning of this sync
    into an exception (``-W error``, or a filter on its category or message): probed with a message of
    the same form, caught, never shown."""
    with warnings.catch_warnings(record=True):
        try:
            warnings.warn(_divergence_message(rank, step, [0.0], src, step, [0.0], 0.0), LRDivergenceWarning, stacklevel=2)
        except Warning:
            return True
    return False


class _WarningRaised(RuntimeError):
    """This rank's warning filters turned its divergence warning into an exception (told at the next sync)."""


# what a rank refuses, the error every rank then raises, and why; a refusal's flag in the row is its position + 1,
# and where ranks refuse for several reasons in one sync the first listed gives the error type
_REFUSALS = (
    (_WarningRaised, LRDivergenceError,
     "turned the divergence warning of their previous sync into an error (their warning filters)"),
    (LocalFailure, RuntimeError, "failed before the sync"),
    (StepRefusal, ValueError, "were given an invalid global_step"),
    (MetricRefusal, MetricError, "were given a metric that cannot be observed"),
    (None, ReplanError, "refused the re-plan"),  # any other refusal: a re-plan refused or failing
)
_REFUSAL_FLAGS = {kind: flag for flag, (kind, _, _) in enumerate(_REFUSALS, 1)}
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


def dp_ranks(dp_group: Any, group: Any = None) -> list[int] | None:
    """The global ranks of this rank's data-parallel group: ``dp_group`` (a ProcessGroup or a 1-D DeviceMesh), else
    ``group``'s (a plugin's ``dp_group``, a DeviceMesh's ``"dp"`` dimension); None where every rank of the sync is one."""
    from torch.distributed.device_mesh import DeviceMesh

    if dp_group is None:
        if isinstance(group, DeviceMesh) and "dp" in (group.mesh_dim_names or ()):
            dp_group = group["dp"]
        elif getattr(group, "dp_group", None) is not None:
            dp_group = group.dp_group
        else:
            return None
    if isinstance(dp_group, DeviceMesh) and dp_group.ndim == 1:
        return sorted(dp_group.mesh.tolist())
    if isinstance(dp_group, dist.ProcessGroup):
        return sorted(dist.get_process_group_ranks(dp_group))
    raise V.ArgumentTypeError(f"dp_group must be None, a torch.distributed ProcessGroup or a 1-D DeviceMesh, got {type(dp_group).__name__}")


def _dp_partition(ranks: list[int], groups: list[Any]) -> list[list[int]]:
    """The sync's rows grouped by data-parallel group (``groups``: each rank's dp ranks, or None for all of them);
    :class:`LayoutMismatchError` where they do not partition the sync's ranks."""
    if all(g is None for g in groups):
        return [list(range(len(ranks)))]
    out: dict[tuple[int, ...], list[int]] = {}
    for i, (r, g) in enumerate(zip(ranks, groups)):
        out.setdefault(tuple(g) if g is not None else (), []).append(i)
    if any(list(key) != [ranks[i] for i in rows] for key, rows in out.items()):
        detail = "; ".join(f"rank {r}: {g}" for r, g in zip(ranks, groups))
        raise LayoutMismatchError(f"the data-parallel groups do not partition the sync's ranks {ranks} (every rank in "
                                  f"exactly one, each naming the same ranks): {detail}")
    return list(out.values())


def group_layout(optimizer: torch.optim.Optimizer) -> list[str]:
    """Each param group's key: its ``name`` where it has one, else its position."""
    return [str(name) if name is not None else f"#{i}" for i, name in enumerate(group_names(optimizer))]


def layout_problem(optimizer: torch.optim.Optimizer) -> str | None:
    """Why the param-group names cannot be matched across ranks (duplicate or empty names), or None.

    Names are compared as the keys the sync uses (``str(name)``; an unnamed group's key is ``#<index>``),
    so ``1`` and ``"1"``, or ``"#0"`` and an unnamed first group, are duplicates too."""
    empty = [i for i, n in enumerate(group_names(optimizer)) if n is not None and str(n).strip() == ""]
    keys = group_layout(optimizer)
    dups = sorted({k for k in keys if keys.count(k) > 1})
    if empty:
        return f"param group(s) {empty} have an empty 'name'"
    if dups:
        return (f"duplicate param group name(s) {dups} (compared as str; an unnamed group's key is '#<index>'): "
                "each named group must have its own name")
    return None


def _layout_key(layout: Sequence[str]) -> int:
    return zlib.crc32("\x00".join(layout).encode())


def union_layout(layouts: list[list[str]], i_src: int) -> list[str] | None:
    """Every rank's groups in one order (the source's first, then each new name in rank order), or None
    where they cannot be matched: unnamed groups (``#i``) match only an identical layout; named groups
    match by name, so pipeline stages holding different subsets stay legal."""
    src = layouts[i_src]
    if all(lay == src for lay in layouts):
        return list(src)
    if any(k.startswith("#") for lay in layouts for k in lay):
        return None
    union = list(src)
    for lay in layouts:
        union += [k for k in lay if k not in union]
    return union


def _spec_diffs(src: Any, mine: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(field, source value, this value)`` for every leaf where two schedule specs differ."""
    if isinstance(src, dict) and isinstance(mine, dict):
        out = []
        for k in sorted(set(src) | set(mine), key=str):
            out += _spec_diffs(src.get(k, "<missing>"), mine.get(k, "<missing>"), f"{prefix}{k}.")
        return out
    return [] if src == mine else [(prefix.rstrip(".").removeprefix("hyperparams."), src, mine)]


@dataclass(frozen=True)
class SyncOptions:
    """How the lr sync runs, validated once (by the hook at construction, before any process group exists).

    Args:
        group: Which ranks (see :func:`resolve_ranks`).
        on_divergence (str): ``"fix"``, ``"warn"`` or ``"raise"``.
        timeout (float): Seconds (at least 0.001) before a collective with a dead peer raises.
        sync_every (int): The caller syncs on every ``sync_every``-th new step (used to count skipped syncs).
        dp_group: This rank's data-parallel group, whose ranks' shares of consumed samples and tokens add up, and
            over whose ranks a metric is reduced (see :func:`dp_ranks`); None: the plugin's or mesh's ``dp`` group
            where ``group`` has one, else every rank.
        metric_op (str): How the metrics of the source rank's data-parallel group make one: ``"mean"``, ``"sum"``,
            ``"min"`` or ``"max"``.
        nonfinite_metric (str): A NaN or infinite metric on any rank is ``"refuse"``-d on every rank
            (:class:`~colossal_sched.errors.MetricError`), or every rank ``"skip"``-s that observation with a warning.
    """

    group: Any = None
    on_divergence: str = "fix"
    timeout: float = 60.0
    sync_every: int = 1
    dp_group: Any = None
    metric_op: str = "mean"
    nonfinite_metric: str = "refuse"

    def __post_init__(self) -> None:
        object.__setattr__(self, "metric_op", V.choice("metric_op", self.metric_op, METRIC_OPS))
        object.__setattr__(self, "nonfinite_metric", V.choice("nonfinite_metric", self.nonfinite_metric, NONFINITE_METRIC))
        object.__setattr__(self, "on_divergence", V.choice("on_divergence", self.on_divergence, ON_DIVERGENCE))
        object.__setattr__(self, "timeout", V.real("timeout", self.timeout, low=MIN_TIMEOUT))
        object.__setattr__(self, "sync_every", V.integer("sync_every", self.sync_every, 1))


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



# ------------------------------------------------- verdicts on the row's words
def agreed_clock(table: np.ndarray, ranks: list[int], i_src: int, dp_groups: list[list[int]]) -> tuple[int, int, bool]:
    """What the update consumed (the data-parallel groups' sums of samples and tokens) and whether it was skipped; or
    :class:`~colossal_sched.errors.ClockMismatchError` on every rank where the clocks, the skip flags or the sums differ."""
    src = table[i_src]
    clocks = table[:, _SAMPLES:_SKIP]
    if (clocks != clocks[i_src]).any():
        off = "; ".join(f"rank {r}: samples {c[0]}, tokens {c[1]}, skipped {c[2]}" for r, c in zip(ranks, clocks.tolist()))
        raise ClockMismatchError(f"ranks disagree on the consumed totals (source rank {ranks[i_src]}: samples "
                                 f"{src[_SAMPLES]}, tokens {src[_TOKENS]}, skipped {src[_SKIPPED]}): {off}")
    skips = table[:, _SKIP]
    if (skips != src[_SKIP]).any():
        skipped = [r for r, f in zip(ranks, skips) if f]
        raise ClockMismatchError(
            f"ranks {skipped} skipped the update before step {int(src[_STEP])} (overflow), ranks "
            f"{[r for r, f in zip(ranks, skips) if not f]} applied it: every rank must skip alike (is the grad "
            "scaler's inf check reduced across ranks?)")
    shares = table[:, _SAMPLES_SHARE:_HAS_METRIC].tolist()  # Python ints: sums never wrap
    sums = [[sum(shares[i][k] for i in group) for k in (0, 1)] for group in dp_groups]
    if any(total != sums[0] for total in sums):
        detail = "; ".join(f"dp ranks {[ranks[i] for i in g]}: samples {t[0]}, tokens {t[1]}" for g, t in zip(dp_groups, sums))
        raise ClockMismatchError(f"the data-parallel groups consumed different totals in the update before step "
                                 f"{int(src[_STEP])} (each rank gives its own share): {detail}")
    skip = bool(src[_SKIP])
    agreed = (0, 0) if skip else tuple(sums[0])
    for name, total, add in zip(("samples", "tokens"), src[_SAMPLES:_SKIPPED].tolist(), agreed):
        if total + add > MAX_COUNT:
            raise ClockMismatchError(f"{name}: the consumed total would be {total + add}, more than a count can be (2**62)")
    return (*agreed, skip)


def agreed_metric(table: np.ndarray, ranks: list[int], i_src: int, dp_groups: list[list[int]], op: str,
                  nonfinite: str) -> float | None:
    """The metrics of the source's data-parallel group reduced by ``op`` (in rank order: the same float on every
    rank), None where no rank gave one, NaN where every rank skips a non-finite one; else
    :class:`~colossal_sched.errors.MetricError` on every rank (some ranks gave none, or one is not finite)."""
    has = table[:, _HAS_METRIC].tolist()  # Python ints: cheaper than numpy's any() on every sync
    if not any(has):
        return None
    if not all(has):
        raise MetricError(f"ranks {[r for r, h in zip(ranks, has) if not h]} gave no metric in the sync of step "
                          f"{int(table[i_src, _STEP])} where ranks {[r for r, h in zip(ranks, has) if h]} did: every "
                          "rank gives hook.step(..., metric=) at the same step, or none does; nothing changed")
    values = table[:, _METRIC].view(np.float64).tolist()
    if not all(map(math.isfinite, values)):
        bad = [(r, v) for r, v in zip(ranks, values) if not math.isfinite(v)]
        what = f"ranks {[r for r, _ in bad]} gave a metric that is not finite ({', '.join(f'rank {r}: {v}' for r, v in bad)})"
        if nonfinite == "refuse":
            raise MetricError(f"{what}: refused on every rank, nothing changed (nonfinite_metric='skip' skips such "
                              "an observation instead)")
        return math.nan  # every rank skips it, and says so (the hook's warning, deferred under warnings-as-errors)
    mine = [values[i] for i in next(g for g in dp_groups if i_src in g)]
    if op in ("min", "max"):
        return min(mine) if op == "min" else max(mine)
    try:
        return math.fsum(mine) / len(mine) if op == "mean" else math.fsum(mine)
    except OverflowError:  # finite metrics whose sum is not: a mean is still finite, a sum is refused
        if op == "mean":
            return math.fsum(v / len(mine) for v in mine)
        raise MetricError(f"the sum of the metrics {mine} is not finite: refused on every rank, nothing changed") from None
