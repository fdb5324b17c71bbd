"""Cosine annealing with warm restarts (SGDR; timm's, HF's and optax's ``sgdr_schedule``)."""
from __future__ import annotations

from torch.optim import Optimizer

from . import _validate as V
from .phases import Phase, Restarts
from .plan import PhasedLR


class CosineAnnealingWarmRestartsLR(PhasedLR):
    r"""Cosine cycles with warm restarts. Cycle :math:`i` lasts :math:`L_i = \lfloor L_0 \cdot m^i \rfloor`
    steps (:math:`L_0` = ``first_cycle_steps``, :math:`m` = ``cycle_mult``) and peaks at
    :math:`p_i = \mathrm{base} \cdot d^i` (:math:`d` = ``cycle_decay``); at offset :math:`u` in a cycle:

    .. math::
        \mathrm{lr} = \begin{cases} \frac{u + 1}{W}\,p_i & u < W \\
        \eta_{min} + (p_i - \eta_{min})\,\frac{1 + \cos(\pi (u - W) / (L_i - W))}{2} & u \ge W \end{cases}

    Any step costs O(log cycles) (integer division when :math:`m = 1`). The cycles do not
    depend on :math:`T`: a re-plan only moves the end where the lr is held. With :math:`m \ne 1` the
    starts of the cycles that begin by :math:`T` are kept: more than ``phases.MAX_CYCLES`` (10**6) of
    them is refused (a ``ValueError`` naming ``first_cycle_steps``, ``cycle_mult`` and the end); a cycle
    length past the float range (e.g. ``cycle_mult=1e300``) only means that cycle runs past :math:`T`.

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        first_cycle_steps (int): Length of the first cycle :math:`L_0`, > ``warmup_steps``, required.
        cycle_mult (float, optional): Growth of each cycle's length, >= 1, defaults to 1.0.
        cycle_decay (float, optional): Factor of each cycle's peak, > 0, defaults to 1.0.
        warmup_steps (int, optional): Warmup steps at the start of every cycle, in ``[0, L_0)``, defaults to 0.
        eta_min (float, optional): Minimum learning rate, >= 0, defaults to 0.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    def __init__(self, optimizer: Optimizer, total_steps: int, first_cycle_steps: int, cycle_mult: float = 1.0,
                 cycle_decay: float = 1.0, warmup_steps: int = 0, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: int, first_cycle_steps: int, cycle_mult: float = 1.0, cycle_decay: float = 1.0,
                   warmup_steps: int = 0, eta_min: float = 0.0) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.first_cycle_steps = V.integer("first_cycle_steps", first_cycle_steps, 1)
        self.cycle_mult = V.real("cycle_mult", cycle_mult, low=1.0)
        self.cycle_decay = V.real("cycle_decay", cycle_decay, low=0.0, low_open=True)
        w = V.integer("warmup_steps", warmup_steps, 0)
        if w >= self.first_cycle_steps:
            raise ValueError(
                f"warmup_steps must be an int in [0, {self.first_cycle_steps - 1}] (first_cycle_steps="
                f"{self.first_cycle_steps}) so that every cycle anneals, got {w}"
            )
        self.warmup_steps = w
        self.eta_min = V.real("eta_min", eta_min, low=0.0)

    def _plan(self) -> tuple[list[Phase], list[int]]:
        return [Restarts(self.total_steps, self.first_cycle_steps, self.cycle_mult, self.cycle_decay,
                         self.warmup_steps, self.eta_min)], []
