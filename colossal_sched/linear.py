"""Linear warmup followed by linear decay to zero."""

from . import _validate as V
from .phases import Linear, Phase, Warmup
from .plan import PhasedLR


class LinearWarmupLR(PhasedLR):
    r"""Linear warmup over :math:`W` steps, then linear decay to 0 at :math:`T`:

    .. math::
        \mathrm{lr}(t) = \begin{cases} \frac{t + 1}{W + 1}\,\mathrm{base} & t < W \\
        \frac{T - \min(t, T)}{T - W}\,\mathrm{base} & t \ge W \end{cases}

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        warmup_steps (int, optional): Number of warmup steps, in ``[0, T)``, defaults to 0.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    colossalai = True

    def __init__(self, optimizer, total_steps: int, warmup_steps: int = 0, last_epoch: int = -1, **kwargs):
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: int, warmup_steps: int = 0) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.warmup_steps = V.warmup(warmup_steps, self.total_steps, decay_follows=True)

    def _plan(self) -> tuple[list[Phase], list[int]]:
        w = self.warmup_steps  # this warmup divides by W + 1; the decay reaches 0 at T
        return ([Warmup(w, denominator=w + 1)] if w else []) + [Linear(self.total_steps - w, 0.0)], [w] if w else []
