"""Looking at a schedule before training: its key points and a sampled curve."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .base import ClosedFormLR
from .builder import scheduler_class

#: up to this many steps, :func:`key_points` evaluates every step (one ``lr_table``)
EXHAUSTIVE_STEPS = 1_000_000


def preview_scheduler(name: str, total_steps: int, lr: float = 1.0, momentum: bool = True, **params: Any) -> ClosedFormLR:
    """A scheduler of class ``name`` on a one-group stand-in optimizer with lr ``lr`` (``unit``: what it counts)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr, momentum=0.9 if momentum else 0.0)
    unit = params.pop("unit", "updates")
    return scheduler_class(name)(opt, total_steps, **params).counting(unit)


def _candidates(s: ClosedFormLR) -> np.ndarray:
    """Steps where a piecewise-monotone schedule can take its extremes: 0, ``T`` and each side of every boundary."""
    total = s.total_steps
    if total <= EXHAUSTIVE_STEPS:
        return np.arange(total + 1, dtype=np.int64)
    steps = {0, total}
    for _, b in s.phase_boundaries():
        steps.update((b - 1, b, b + 1))
    return np.array(sorted(t for t in steps if 0 <= t <= total), dtype=np.int64)


def peak(s: ClosedFormLR, group: int = 0) -> int:
    """The first step at which group ``group`` reaches its highest lr (exact: every step up to
    :data:`EXHAUSTIVE_STEPS`, beyond that both sides of each phase boundary, where a schedule made of
    monotone phases has its extremes). Values within 1e-12 relative of the highest count as reaching it."""
    steps = _candidates(s)
    lrs = s.lr_table(steps)[:, group]
    top = lrs.max()
    return int(steps[np.flatnonzero(lrs >= top - 1e-12 * abs(top))[0]])


def key_points(s: ClosedFormLR) -> list[tuple[str, int, float]]:
    """``(what, step, lr of group 0)`` at the start, each phase boundary, the peak and the end, by step."""
    points = [("start", 0)] + s.phase_boundaries() + [("peak", peak(s))]
    return sorted(((what, step, s.lr_at(step)[0]) for what, step in points), key=lambda p: (p[1], p[0] != "peak"))


def sample_steps(total_steps: int, n: int, extra: list[int] | None = None) -> np.ndarray:
    """About ``n`` steps spread over ``[0, total_steps]``, plus ``extra`` (phase boundaries), sorted."""
    grid = np.unique(np.linspace(0, total_steps, min(n, total_steps + 1)).round().astype(np.int64))
    if extra:
        grid = np.unique(np.concatenate([grid, np.asarray(extra, dtype=np.int64), np.asarray(extra, dtype=np.int64) - 1]))
    return grid[(grid >= 0) & (grid <= total_steps)]


def metric_note(s: ClosedFormLR) -> str:
    """A line saying where the curve depends on metrics (a plateau, which ``lr_table`` draws at its level now), or ""."""
    if getattr(s, "plateau", None) is None:
        return ""
    start = s.joined().starts[-1]
    return (f"note: from step {start} on, the lr depends on the metrics reported (a plateau: ReduceLROnPlateau); "
            f"drawn at its level now{' (no reduction yet)' if s.plateau.levels is None else ''}, the warmup before it exactly\n")
