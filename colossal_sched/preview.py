"""Looking at a schedule before training: its key points and a sampled curve."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .base import ClosedFormLR
from .builder import scheduler_class


def preview_scheduler(name: str, total_steps: int, lr: float = 1.0, momentum: bool = True, **params: Any) -> ClosedFormLR:
    """A scheduler of class ``name`` on a one-group stand-in optimizer with lr ``lr``."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr, momentum=0.9 if momentum else 0.0)
    return scheduler_class(name)(opt, total_steps, **params)


def boundaries(s: ClosedFormLR) -> list[tuple[str, int]]:
    """``(label, step)`` where a phase of the schedule starts or ends."""
    out = []
    w = getattr(s, "warmup_steps", 0)
    if w:
        out.append(("warmup end", w))
    if getattr(s, "flat_steps", 0):
        out.append(("decay start", w + s.flat_steps))
    for m in getattr(s, "milestones", []):
        out.append(("milestone", m))
    for i, (end, _) in enumerate(getattr(s, "_phases", [])[:-1]):
        out.append((f"phase {i + 2} start", int(round(end + 1))))
    out.append(("end", s.total_steps))
    return out


def key_points(s: ClosedFormLR) -> list[tuple[str, int, float]]:
    """``(what, step, lr of group 0)`` at the start, phase boundaries, peak and end."""
    steps = sample_steps(s.total_steps, 4096)
    lrs = s.lr_table(steps)[:, 0]
    peak = int(steps[int(np.argmax(lrs))])
    points = [("start", 0)] + boundaries(s) + [("peak", peak)]
    return sorted(((what, step, s.lr_at(step)[0]) for what, step in points), key=lambda p: (p[1], p[0]))


def sample_steps(total_steps: int, n: int, extra: list[int] | None = None) -> np.ndarray:
    """About ``n`` steps spread over ``[0, total_steps]``, plus ``extra`` (phase boundaries), sorted."""
    grid = np.unique(np.linspace(0, total_steps, min(n, total_steps + 1)).round().astype(np.int64))
    if extra:
        grid = np.unique(np.concatenate([grid, np.asarray(extra, dtype=np.int64), np.asarray(extra, dtype=np.int64) - 1]))
    return grid[(grid >= 0) & (grid <= total_steps)]
