"""Polynomial decay to ``end_lr``, with optional warmup."""

from . import _validate as V
from .phases import Phase, Polynomial
from .plan import PhasedLR, warmup_then


class _Polynomial(PhasedLR, abstract=True):
    """What PolynomialLR and PolynomialWarmupLR share: polynomial decay to ``end_lr``, after a warmup if any."""

    warmup_steps = 0

    def _configure_decay(self, end_lr: float, power: float) -> None:
        self.end_lr = V.real("end_lr", end_lr, low=0.0)
        self.power = V.real("power", power, low=0.0, low_open=True)

    def _plan(self) -> tuple[list[Phase], list[int]]:
        w = self.warmup_steps
        return warmup_then(w, Polynomial(self.total_steps - w, self.end_lr, self.power))


class PolynomialLR(_Polynomial):
    r"""Polynomial decay from the base lr to ``end_lr``:

    .. math:: \mathrm{lr}(t) = (\mathrm{base} - \mathrm{end\_lr})\,(1 - \min(t, T) / T)^{p} + \mathrm{end\_lr}

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        end_lr (float, optional): Final learning rate, >= 0, defaults to 0.0001.
        power (float, optional): The power :math:`p` of the polynomial, > 0, defaults to 1.0.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    colossalai = True

    def __init__(self, optimizer, total_steps: int, end_lr: float = 0.0001, power: float = 1.0, last_epoch: int = -1,
                 **kwargs):
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: int, end_lr: float = 0.0001, power: float = 1.0) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self._configure_decay(end_lr, power)


class PolynomialWarmupLR(_Polynomial):
    r"""Linear warmup over :math:`W` steps, then polynomial decay to ``end_lr`` over :math:`T - W` steps:

    .. math::
        \mathrm{lr}(t) = \begin{cases} \frac{t + 1}{W}\,\mathrm{base} & t < W \\
        (\mathrm{base} - \mathrm{end\_lr})\,\left(1 - \frac{\min(t - W, T - W)}{T - W}\right)^{p} + \mathrm{end\_lr} & t \ge W \end{cases}

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        warmup_steps (int, optional): Number of warmup steps, in ``[0, T)``, defaults to 0.
        end_lr (float, optional): Final learning rate, >= 0, defaults to 0.0001.
        power (float, optional): The power :math:`p` of the polynomial, > 0, defaults to 1.0.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    colossalai = True

    def __init__(self, optimizer, total_steps: int, warmup_steps: int = 0, end_lr: float = 0.0001, power: float = 1.0,
                 last_epoch: int = -1, **kwargs):
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: int, warmup_steps: int = 0, end_lr: float = 0.0001, power: float = 1.0) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.warmup_steps = V.warmup(warmup_steps, self.total_steps, decay_follows=True)
        self._configure_decay(end_lr, power)
