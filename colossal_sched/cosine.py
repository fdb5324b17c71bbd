"""Cosine annealing, with optional warmup and flat phases."""

from typing import Any

from . import _validate as V
from ._ops import Ops, cosine
from .base import ClosedFormLR

#: keyword arguments ColossalAI's builders pass that do not change the schedule
COMPAT_KWARGS = ("num_steps_per_epoch",)


def warmup_factor(t: Any, warmup_steps: int) -> Any:
    """ColossalAI's linear warmup factor ``(t + 1) / W`` (used for ``t < W``)."""
    return (t + 1) / warmup_steps if warmup_steps else 1.0


class CosineAnnealingLR(ClosedFormLR):
    r"""Cosine annealing from the base lr to ``eta_min`` over ``total_steps``:

    .. math:: \mathrm{lr}(t) = \eta_{min} + (\mathrm{base} - \eta_{min})\,\frac{1 + \cos(\pi \min(t, T) / T)}{2}

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        eta_min (float, optional): Minimum learning rate, defaults to 0.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    hyperparams = ("total_steps", "eta_min")

    def __init__(self, optimizer, total_steps: int, eta_min: int = 0, last_epoch: int = -1, **kwargs):
        V.unknown_kwargs(type(self).__name__, kwargs, COMPAT_KWARGS)
        self._configure(total_steps=total_steps, eta_min=eta_min)
        super().__init__(optimizer, last_epoch)

    def _configure(self, total_steps: int, eta_min: float = 0.0) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.eta_min = V.real("eta_min", eta_min, low=0.0)

    def _lrs(self, t: Any, ops: Ops) -> list[Any]:
        c = cosine(ops, t, self.total_steps)
        lo = self.eta_min
        return [lo + (base - lo) * c for base in self.base_lrs]


class CosineAnnealingWarmupLR(ClosedFormLR):
    r"""Linear warmup over ``warmup_steps`` :math:`W`, then cosine annealing to ``eta_min``:

    .. math::
        \mathrm{lr}(t) = \begin{cases} \frac{t + 1}{W}\,\mathrm{base} & t < W \\
        \eta_{min} + (\mathrm{base} - \eta_{min})\,\frac{1 + \cos(\pi \min(t - W, T - W) / (T - W))}{2} & t \ge W \end{cases}

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        warmup_steps (int, optional): Number of warmup steps, in ``[0, T)``, defaults to 0.
        eta_min (float, optional): Minimum learning rate, defaults to 0.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    hyperparams = ("total_steps", "warmup_steps", "eta_min")

    def __init__(
        self, optimizer, total_steps: int, warmup_steps: int = 0, eta_min: float = 0.0, last_epoch: int = -1
    ):
        self._configure(total_steps=total_steps, warmup_steps=warmup_steps, eta_min=eta_min)
        super().__init__(optimizer, last_epoch)

    def _configure(self, total_steps: int, warmup_steps: int = 0, eta_min: float = 0.0) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.warmup_steps = V.warmup(warmup_steps, self.total_steps, decay_follows=True)
        self.eta_min = V.real("eta_min", eta_min, low=0.0)

    def _lrs(self, t: Any, ops: Ops) -> list[Any]:
        w = self.warmup_steps
        warm = warmup_factor(t, w)
        c = cosine(ops, t - w, self.total_steps - w)
        lo, warming = self.eta_min, t < w
        return [ops.where(warming, warm * base, lo + (base - lo) * c) for base in self.base_lrs]


class FlatAnnealingLR(ClosedFormLR):
    r"""The base lr for the first :math:`F = \lfloor T \cdot \mathrm{pct\_start} \rfloor` steps, then cosine annealing:

    .. math::
        \mathrm{lr}(t) = \begin{cases} \mathrm{base} & t < F \\
        \eta_{min} + (\mathrm{base} - \eta_{min})\,\frac{1 + \cos(\pi \min(t - F, T - F) / (T - F))}{2} & t \ge F \end{cases}

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        pct_start (float, optional): Fraction of steps before the decay starts, in ``[0, 1]``, defaults to 0.72.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
        eta_min (float, keyword): Minimum learning rate, defaults to 0 (ColossalAI ignores it).
    """

    hyperparams = ("total_steps", "pct_start", "eta_min")

    def __init__(self, optimizer, total_steps: int, pct_start: float = 0.72, last_epoch: int = -1, **kwargs):
        V.unknown_kwargs(type(self).__name__, kwargs, COMPAT_KWARGS + ("eta_min",))
        self._configure(total_steps=total_steps, pct_start=pct_start, eta_min=kwargs.get("eta_min", 0.0))
        super().__init__(optimizer, last_epoch)

    def _configure(self, total_steps: int, pct_start: float = 0.72, eta_min: float = 0.0) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.pct_start = V.real("pct_start", pct_start, low=0.0, high=1.0)
        self.eta_min = V.real("eta_min", eta_min, low=0.0)
        self.flat_steps = int(self.total_steps * self.pct_start)

    def _lrs(self, t: Any, ops: Ops) -> list[Any]:
        f = self.flat_steps
        c = cosine(ops, t - f, self.total_steps - f)
        lo, flat = self.eta_min, t < f
        return [ops.where(flat, base, lo + (base - lo) * c) for base in self.base_lrs]


class FlatAnnealingWarmupLR(ClosedFormLR):
    r"""Linear warmup over :math:`W` steps, the base lr for :math:`F = \lfloor (T - W) \cdot \mathrm{pct\_start} \rfloor`
    more, then cosine annealing to ``eta_min`` over the remaining :math:`T - W - F` steps.

    .. math::
        \mathrm{lr}(t) = \begin{cases} \frac{t + 1}{W}\,\mathrm{base} & t < W \\ \mathrm{base} & W \le t < W + F \\
        \eta_{min} + (\mathrm{base} - \eta_{min})\,\frac{1 + \cos(\pi u / L)}{2},\
        u = \min(t - W - F, L),\ L = T - W - F & \text{otherwise} \end{cases}

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        warmup_steps (int, optional): Number of warmup steps, in ``[0, T)``, defaults to 0.
        pct_start (float, optional): Fraction of the post-warmup steps kept flat, in ``[0, 1]``, defaults to 0.72.
        eta_min (float, optional): Minimum learning rate, defaults to 0.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    hyperparams = ("total_steps", "warmup_steps", "pct_start", "eta_min")

    def __init__(
        self,
        optimizer,
        total_steps: int,
        warmup_steps: int = 0,
        pct_start: float = 0.72,
        eta_min: int = 0,
        last_epoch: int = -1,
        **kwargs,
    ):
        V.unknown_kwargs(type(self).__name__, kwargs, COMPAT_KWARGS)
        self._configure(total_steps=total_steps, warmup_steps=warmup_steps, pct_start=pct_start, eta_min=eta_min)
        super().__init__(optimizer, last_epoch)

    def _configure(self, total_steps: int, warmup_steps: int = 0, pct_start: float = 0.72, eta_min: float = 0.0) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.warmup_steps = V.warmup(warmup_steps, self.total_steps, decay_follows=True)
        self.pct_start = V.real("pct_start", pct_start, low=0.0, high=1.0)
        self.eta_min = V.real("eta_min", eta_min, low=0.0)
        self.flat_steps = int((self.total_steps - self.warmup_steps) * self.pct_start)

    def _lrs(self, t: Any, ops: Ops) -> list[Any]:
        w, d = self.warmup_steps, self.warmup_steps + self.flat_steps
        warm = warmup_factor(t, w)
        c = cosine(ops, t - d, self.total_steps - d)
        lo, warming, flat = self.eta_min, t < w, t < d
        return [ops.where(warming, warm * base, ops.where(flat, base, lo + (base - lo) * c)) for base in self.base_lrs]
