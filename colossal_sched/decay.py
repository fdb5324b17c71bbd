"""Geometric decay: every ``step_size`` steps, or every step."""

from typing import Any

from . import _validate as V
from ._ops import power_overflow
from .base import ClosedFormLR
from .phases import Exponential, Phase, Steps
from .plan import PhasedLR
from .errors import InvalidLRError


def check_power(sched: ClosedFormLR, gamma: float, kmax: int, step_of_power: Any, formula: str) -> None:
    """Refuse ``gamma > 1`` where ``base * gamma**k`` overflows within ``total_steps`` (``kmax`` decays
    reached by then), naming gamma, total_steps and the first step where it does."""
    k = power_overflow(gamma, kmax, sched.base_lrs)
    if k is not None:
        step = step_of_power(k)
        raise InvalidLRError(
            f"{type(sched).__name__}: gamma={gamma} makes the lr {formula} overflow to inf at step {step} "
            f"(base lr {max(sched.base_lrs)}), before total_steps={sched.total_steps}; gamma > 1 is allowed only "
            f"while the lr stays finite up to total_steps: use total_steps < {step} or a smaller gamma"
        )


class StepLR(PhasedLR):
    r"""Decay by ``gamma`` every ``step_size`` steps:

    .. math:: \mathrm{lr}(t) = \mathrm{base} \cdot \gamma^{\lfloor \min(t, T) / \mathrm{step\_size} \rfloor}

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        step_size (int, optional): Period of lr decay, >= 1, defaults to 1.
        gamma (float, optional): Multiplicative factor of lr decay, > 0, defaults to 0.1; above 1 while
            :math:`\mathrm{base} \cdot \gamma^{\lfloor T / \mathrm{step\_size} \rfloor}` stays finite.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    colossalai = True

    def __init__(self, optimizer, total_steps, step_size: int = 1, gamma: float = 0.1, last_epoch: int = -1) -> None:
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: int, step_size: int = 1, gamma: float = 0.1) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.step_size = V.integer("step_size", step_size, 1)
        self.gamma = V.real("gamma", gamma, low=0.0, low_open=True)

    def _check_range(self) -> None:
        size = self.step_size
        check_power(self, self.gamma, self.total_steps // size, lambda k: k * size, "base * gamma ** (t // step_size)")
        super()._check_range()

    def _plan(self) -> tuple[list[Phase], list[int]]:
        return [Steps(self.total_steps, self.step_size, self.gamma)], []


class ExponentialLR(PhasedLR):
    r"""Decay by ``gamma`` every step:

    .. math:: \mathrm{lr}(t) = \mathrm{base} \cdot \gamma^{\min(t, T)}

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        gamma (float, optional): Multiplicative factor of lr decay, > 0, defaults to 1.0; above 1 while
            :math:`\mathrm{base} \cdot \gamma^T` stays finite.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    colossalai = True

    def __init__(self, optimizer, total_steps, gamma: float = 1.0, last_epoch: int = -1) -> None:
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: int, gamma: float = 1.0) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.gamma = V.real("gamma", gamma, low=0.0, low_open=True)

    def _check_range(self) -> None:
        check_power(self, self.gamma, self.total_steps, lambda k: k, "base * gamma ** t")
        super()._check_range()

    def _plan(self) -> tuple[list[Phase], list[int]]:
        return [Exponential(self.total_steps, self.gamma)], []
