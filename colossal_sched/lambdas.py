"""Schedules given by user functions of the step."""

import math
from typing import Any, Callable

import numpy as np
from torch.optim import Optimizer

from . import _validate as V
from ._ops import SCALAR, Ops
from .base import ClosedFormLR



class _LambdaBase(ClosedFormLR):
    hyperparams = ("total_steps",)

    def __init__(self, optimizer, total_steps, lr_lambda=None, last_epoch: int = -1) -> None:
        self._configure(total_steps=total_steps)
        self.lr_lambdas = self._check_lambdas(lr_lambda, optimizer)
        super().__init__(optimizer, last_epoch)

    def _configure(self, total_steps: int) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)

    @staticmethod
    def _check_lambdas(lr_lambda: Any, optimizer: Optimizer) -> list[Callable[[int], float]]:
        n = len(optimizer.param_groups)
        if lr_lambda is None:
            raise ValueError("lr_lambda is required: a function of the step, or a list of one per param group")
        fns = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n
        if len(fns) != n:
            raise ValueError(f"lr_lambda must be one function or a list of {n} (one per param group), got {len(fns)}")
        for i, fn in enumerate(fns):
            if not callable(fn):
                raise V.ArgumentTypeError(f"lr_lambda[{i}] must be callable, got {type(fn).__name__}")
        return fns

    def _value(self, group: int, t: int) -> float:
        """``lr_lambda[group](t)``, refused unless it is a finite number."""
        value = float(self.lr_lambdas[group](t))
        if not math.isfinite(value):
            raise ValueError(
                f"lr_lambda[{group}]({t}) returned {value}; the lr must be finite (the optimizer keeps its lr)"
            )
        return value


class LambdaLR(_LambdaBase):
    r"""The base lr times a user function of the step:

    .. math:: \mathrm{lr}_g(t) = \mathrm{base}_g \cdot f_g(\min(t, T))

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        lr_lambda (Union[``function``, ``list[function]``]): The factor :math:`f(t)`, or one per param group.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    def _lrs(self, t: Any, ops: Ops) -> list[Any]:
        if ops is SCALAR:
            return [base * self._value(g, t) for g, base in enumerate(self.base_lrs)]
        return [
            base * np.array([self._value(g, int(s)) for s in t], dtype=np.float64) for g, base in enumerate(self.base_lrs)
        ]


class MultiplicativeLR(_LambdaBase):
    r"""Multiply the lr by a user function of the step, every step:

    .. math:: \mathrm{lr}_g(t) = \mathrm{lr}_g(t - 1) \cdot f_g(t) = \mathrm{base}_g \prod_{i=1}^{\min(t, T)} f_g(i)

    The running factor :math:`\prod f_g(i)` is kept in ``state_dict``, so a resume continues
    from it. Jumping forward multiplies the factors of the skipped steps.

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        lr_lambda (Union[``function``, ``list[function]``]): The factor :math:`f(t)`, or one per param group.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    _factor_step: int = 0
    _factors: list[float] | None = None  # the running product after _factor_step steps

    def _factors_at(self, t: int) -> list[float]:
        """Running factors after ``t`` steps, extending the cached product (or rebuilding it from step 0)."""
        if self._factors is None or t < self._factor_step:
            self._factor_step, self._factors = 0, [1.0] * len(self.base_lrs)
        factors = list(self._factors)
        for s in range(self._factor_step + 1, t + 1):
            factors = [f * self._value(g, s) for g, f in enumerate(factors)]
        self._factor_step, self._factors = t, factors
        return factors

    def _lrs(self, t: Any, ops: Ops) -> list[Any]:
        if ops is SCALAR:
            return [base * f for base, f in zip(self.base_lrs, self._factors_at(t))]
        steps = np.asarray(t, dtype=np.int64)
        if not steps.size:
            return [np.zeros(0) for _ in self.base_lrs]
        lo = self._factor_step if self._factors is not None and steps.min() >= self._factor_step else 0
        start = self._factors if lo else [1.0] * len(self.base_lrs)
        out = []
        for g, base in enumerate(self.base_lrs):  # the running product, multiplied in the order step() does
            seq = np.array([start[g]] + [self._value(g, s) for s in range(lo + 1, int(steps.max()) + 1)])
            out.append(base * np.cumprod(seq)[steps - lo])
        return out

    def _extra_state(self) -> dict[str, Any]:
        step = min(self.last_epoch, self.total_steps)
        return {"factor_step": step, "factors": list(self._factors_at(step))}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if "factors" in state:
            factors = [V.real("factors", f) for f in state["factors"]]
            if len(factors) != len(self.base_lrs):
                raise ValueError(f"saved factors are for {len(factors)} param groups, this optimizer has {len(self.base_lrs)}")
            self._factor_step, self._factors = V.integer("factor_step", state["factor_step"], 0), factors
