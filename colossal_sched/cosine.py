"""Cosine annealing, with optional warmup and flat phases."""

from . import _validate as V
from .phases import Constant, Cosine, Phase
from .plan import PhasedLR, warmup_then


class CosineAnnealingLR(PhasedLR):
    r"""Cosine annealing from the base lr to ``eta_min`` over ``total_steps``:

    .. math:: \mathrm{lr}(t) = \eta_{min} + (\mathrm{base} - \eta_{min})\,\frac{1 + \cos(\pi \min(t, T) / T)}{2}

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        eta_min (float, optional): Minimum learning rate, defaults to 0.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    colossalai = True

    def __init__(self, optimizer, total_steps: int, eta_min: int = 0, last_epoch: int = -1, **kwargs):
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: int, eta_min: float = 0) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.eta_min = V.real("eta_min", eta_min, low=0.0)

    def _plan(self) -> tuple[list[Phase], list[int]]:
        return [Cosine(self.total_steps, self.eta_min)], []


class CosineAnnealingWarmupLR(PhasedLR):
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

    colossalai = True

    def __init__(self, optimizer, total_steps: int, warmup_steps: int = 0, eta_min: float = 0.0, last_epoch: int = -1):
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: int, warmup_steps: int = 0, eta_min: float = 0.0) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.warmup_steps = V.warmup(warmup_steps, self.total_steps, decay_follows=True)
        self.eta_min = V.real("eta_min", eta_min, low=0.0)

    def _plan(self) -> tuple[list[Phase], list[int]]:
        w = self.warmup_steps
        return warmup_then(w, Cosine(self.total_steps - w, self.eta_min))


class FlatAnnealingLR(PhasedLR):
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

    colossalai = True

    def __init__(self, optimizer, total_steps: int, pct_start: float = 0.72, last_epoch: int = -1, **kwargs):
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: int, pct_start: float = 0.72, eta_min: float = 0.0) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.pct_start = V.real("pct_start", pct_start, low=0.0, high=1.0)
        self.eta_min = V.real("eta_min", eta_min, low=0.0)
        self.flat_steps = int(self.total_steps * self.pct_start)

    def _plan(self) -> tuple[list[Phase], list[int]]:
        f = self.flat_steps
        return warmup_then(0, Constant(f), Cosine(self.total_steps - f, self.eta_min))


class FlatAnnealingWarmupLR(PhasedLR):
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

    colossalai = True

    def __init__(self, optimizer, total_steps: int, warmup_steps: int = 0, pct_start: float = 0.72, eta_min: int = 0,
                 last_epoch: int = -1, **kwargs):
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: int, warmup_steps: int = 0, pct_start: float = 0.72, eta_min: float = 0) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.warmup_steps = V.warmup(warmup_steps, self.total_steps, decay_follows=True)
        self.pct_start = V.real("pct_start", pct_start, low=0.0, high=1.0)
        self.eta_min = V.real("eta_min", eta_min, low=0.0)
        self.flat_steps = int((self.total_steps - self.warmup_steps) * self.pct_start)

    def _plan(self) -> tuple[list[Phase], list[int]]:
        w, f = self.warmup_steps, self.flat_steps
        return warmup_then(w, Constant(f), Cosine(self.total_steps - w - f, self.eta_min))
