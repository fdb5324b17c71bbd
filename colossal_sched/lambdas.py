"""Schedules given by user functions of the step."""

import bisect
from typing import Any, Callable

import numpy as np
from torch.optim import Optimizer

from . import _validate as V
from ._ops import SCALAR, Ops
from ._validate import MAX_FLOAT
from .base import ClosedFormLR
from .errors import InvalidLRError

_CALL = object()  # _value's default: call the function


class _LambdaBase(ClosedFormLR):
    colossalai = True
    rebuildable = False  # user functions decide the lr: a state cannot hold them

    def __init__(self, optimizer, total_steps, lr_lambda=None, last_epoch: int = -1) -> None:
        self.lr_lambdas = self._check_lambdas(lr_lambda, optimizer)
        super().__init__(**self._arguments(locals()))

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

    def _critical_steps(self) -> set[int]:  # user functions decide: each value is checked at its step
        return set()

    def _times(self, t: int, scale: list[float], what: str, raw: Any = _CALL) -> list[float]:
        """``[scale[g] * lr_lambda[g](t)]``, refused (naming group, step and value) unless every factor is a
        finite number ``>= 0`` and every product finite: one pass while all is well. One function for every group is
        called once (``raw``: what it returned, where called already); several are called again, one by one, only
        to name what is not."""
        fns = self.lr_lambdas
        if raw is _CALL and fns.count(fns[0]) == len(fns):
            raw = fns[0](t)
        if 0.0 not in scale:  # (a zero scale would hide a negative factor as -0.0)
            try:
                if raw is not _CALL:  # one function for every group
                    v = float(raw)
                    out = [x * v for x in scale]
                    if 0.0 <= v <= 1.0:  # each product at most its (finite, >= 0) scale: no check
                        return out
                else:
                    out = [x * float(fn(t)) for x, fn in zip(scale, fns)]
                for v in out:
                    if not 0.0 <= v <= MAX_FLOAT:  # NaN, inf or negative
                        break
                else:
                    return out
            except (TypeError, ValueError, OverflowError):
                pass
        out = [x * self._value(g, t, raw) for g, x in enumerate(scale)]
        for g, v in enumerate(out):
            if not v <= MAX_FLOAT:
                raise InvalidLRError(
                    f"the {what} of param_groups[{g}] at step {t} would be {v} ({scale[g]} * lr_lambda[{g}]({t})); "
                    "it must be finite (the optimizer keeps its lr)"
                )
        return out

    def _value(self, group: int, t: int, raw: Any = _CALL) -> float:
        """``lr_lambda[group](t)`` (or its result ``raw``), refused unless it is a finite number ``>= 0``."""
        if raw is _CALL:
            raw = self.lr_lambdas[group](t)
        try:
            value = raw if type(raw) is float else float(raw)
        except (TypeError, ValueError):
            raise V.ArgumentTypeError(
                f"lr_lambda[{group}]({t}) returned {V.short(raw)} ({type(raw).__name__}); it must return a number"
            ) from None
        if not 0.0 <= value <= MAX_FLOAT:
            raise InvalidLRError(
                f"lr_lambda[{group}]({t}) returned {value} at step {t}; the factor must be finite and >= 0 "
                "(the optimizer keeps its lr)"
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
            return self._times(t, self.base_lrs, "lr")
        t, calls = np.asarray(t, dtype=np.int64), {}  # each distinct function is called per step (as Python ints)
        steps = range(int(t[0]), int(t[-1]) + 1) if t.size and int(t[-1] - t[0]) == t.size - 1 and bool((np.diff(t) == 1).all()) else t.tolist()
        out = []
        for g, (base, fn) in enumerate(zip(self.base_lrs, self.lr_lambdas)):
            try:
                if id(fn) not in calls:  # and its range (NaN fails both checks): base * v <= base * max for every v
                    values = np.fromiter(map(fn, steps), np.float64, len(steps))
                    calls[id(fn)] = values, float(values.min()), float(values.max())
                values, low, high = calls[id(fn)]
                lrs = base * values
                ok = 0.0 <= low and high <= MAX_FLOAT and base * high <= MAX_FLOAT
            except (TypeError, ValueError, OverflowError):
                ok = False
            if not ok:  # call again, one by one, to name the step and the value (or take what the scalar path takes)
                lrs = np.array([self._times(s, self.base_lrs, "lr")[g] for s in steps], dtype=np.float64)
            out.append(lrs)
        return out


class MultiplicativeLR(_LambdaBase):
    r"""Multiply the lr by a user function of the step, every step:

    .. math:: \mathrm{lr}_g(t) = \mathrm{lr}_g(t - 1) \cdot f_g(t) = \mathrm{base}_g \prod_{i=1}^{\min(t, T)} f_g(i)

    The running product is a pure function of the step, multiplied in step order from the nearest cached
    product (every 1024 steps, and where a jump leaves). It is kept in ``state_dict``: a resume continues
    from the saved product :math:`P_s` (steps after ``s`` multiply onto it, earlier ones start from step 0).

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        lr_lambda (Union[``function``, ``list[function]``]): The factor :math:`f(t)`, finite and ``>= 0``,
            or one per param group.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    _EVERY = 1024  # a running product is cached at every multiple of this step
    _products: "_Products | None" = None

    def _cache(self) -> "_Products":
        cache = self._products
        if cache is None or cache.n != len(self.base_lrs):
            cache = self._products = _Products(len(self.base_lrs))
        return cache

    def _factors_at(self, t: int) -> list[float]:
        """The running products after ``t`` steps (pure: from the cached product nearest below ``t``)."""
        cache = self._cache()
        start, factors = cache.start(t)
        if start == t:
            return factors
        if start != cache.head[0]:  # a jump away from the last product: keep it for a jump back
            cache.keep(*cache.head)
        every = self._EVERY
        for s in range(start + 1, t + 1):
            factors = self._times(s, factors, "running product of lr_lambda")
            if not s % every:
                cache.keep(s, factors)
        cache.head = (t, factors)
        return factors

    def _next(self, t: int, cache: "_Products") -> list[float]:
        """The lrs after step ``t`` from the running products after ``t - 1`` (``cache.head``; those after ``t``
        become it): both in one pass, unchecked, where every group shares one function and its factor is a float in
        ``[0, 1]`` (no product can leave the range), else by :meth:`_times`. One call of each function either way."""
        fns, before = self.lr_lambdas, cache.head[1]
        v = fns[0](t) if fns.count(fns[0]) == len(fns) else _CALL
        if type(v) is float and 0.0 <= v <= 1.0:
            products, out, g = [], [], 0
            for base in self.base_lrs:  # by index, one loop: comprehensions cost a call each (CPython 3.11)
                p = before[g] * v
                products.append(p)
                out.append(base * p)
                g += 1
        else:
            products = self._times(t, before, "running product of lr_lambda", v)
            out = [base * f for base, f in zip(self.base_lrs, products)]
        cache.head = (t, products)
        return out

    def _lrs(self, t: Any, ops: Ops) -> list[Any]:
        if ops is SCALAR:
            cache = self._products  # step()'s path first: the step after the last product, if none is kept at it
            if cache is not None and cache.head[0] == t - 1 and t % self._EVERY and t != cache.anchor and cache.n == len(self.base_lrs):
                out = self._next(t, cache)
            else:
                out = [base * f for base, f in zip(self.base_lrs, self._factors_at(t))]
            for lr in out:
                if not lr <= MAX_FLOAT:
                    g = out.index(lr)
                    raise InvalidLRError(
                        f"the lr of param_groups[{g}] at step {t} would be {lr} (base lr {self.base_lrs[g]} * the running "
                        "product of lr_lambda); it must be finite (the optimizer keeps its lr)"
                    )
            return out
        steps = np.asarray(t, dtype=np.int64)
        below = steps < self._cache().anchor
        if not below.any() or below.all():  # one side of the anchor (always, without a resume)
            return list(self._products_table(steps))
        out = np.empty((len(self.base_lrs), steps.size))
        for part in (below, ~below):  # each side of the anchor from its own products
            out[:, part] = self._products_table(steps[part])
        return list(out)

    def _products_table(self, steps: np.ndarray) -> np.ndarray:
        """``base * product`` for steps on one side of the anchor, as ``_factors_at`` gives them: one
        ``cumprod`` (the same multiplications in the same order) from the cached product below them."""
        lo, hi = int(steps.min()), int(steps.max())
        start, factors = self._cache().start(lo)
        span = range(start + 1, hi + 1)
        at = slice(lo - start, None) if steps.size == hi - lo + 1 and bool((np.diff(steps) == 1).all()) else steps - start
        out, calls = np.empty((len(factors), steps.size)), {}
        for g, fn in enumerate(self.lr_lambdas):
            key = (id(fn), repr(factors[g]))  # repr: -0.0 is not 0.0 here
            if key not in calls:  # one call per step of each distinct function, one product
                try:
                    values = np.fromiter(map(fn, span), np.float64, len(span))
                    bad = np.flatnonzero(~((values >= 0.0) & (values <= MAX_FLOAT)))
                except (TypeError, ValueError, OverflowError):
                    values, bad = None, [0]
                if len(bad):  # call again, one by one, to name the step and the value
                    for s in span:
                        self._value(g, s)
                with np.errstate(over="ignore"):  # an overflow is refused just below, naming its step
                    calls[key] = np.cumprod(np.concatenate(([factors[g]], values)))
            products = calls[key][at]
            lrs = self.base_lrs[g] * products
            if not np.all(lrs <= MAX_FLOAT):
                s = int(steps[np.flatnonzero(~(lrs <= MAX_FLOAT))[0]])
                self._lrs(s, SCALAR)  # raises, naming the step where the product or the lr overflows
            out[g] = lrs
        return out

    def _extra_state(self) -> dict[str, Any]:
        step = min(max(self.last_epoch, 0), self.total_steps)
        return {"factor_step": step, "factors": list(self._factors_at(step))}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if "factors" in state:
            factors, n = state["factors"], len(self.base_lrs)
            if not isinstance(factors, list) or len(factors) != n:
                raise ValueError(f"saved factors must be a list of {n} floats >= 0 (one per param group), got {V.short(factors)}")
            factors = [V.real(f"factors[{i}]", f, low=0.0) for i, f in enumerate(factors)]
            step = V.step("factor_step", state.get("factor_step"))
            self._products = _Products(n, anchor=(step, factors))  # a new cache: the old one may be shared
        else:
            self._products = _Products(len(self.base_lrs))


class _Products:
    """Cached running products of MultiplicativeLR: ``(step, factors)`` sorted by step, always with
    step 0 (all ones) and the anchor (the product a resume continues from). A product below the
    anchor is computed from step 0, one at or above it from the anchor, so every answer is unique."""

    def __init__(self, n: int, anchor: tuple[int, list[float]] | None = None) -> None:
        self.n = n
        self.anchor = anchor[0] if anchor else 0
        self.steps, self.values = [0], [[1.0] * n]
        if anchor and anchor[0] > 0:
            self.steps.append(anchor[0])
            self.values.append(list(anchor[1]))
        self.head = (self.steps[-1], self.values[-1])  # the last product computed

    def start(self, t: int) -> tuple[int, list[float]]:
        """The cached product to multiply on from for step ``t``: the nearest at or below it, on the same side of the anchor."""
        hs, i = self.head[0], bisect.bisect_right(self.steps, t) - 1
        if self.steps[i] <= hs <= t and (hs >= self.anchor or t < self.anchor):
            return self.head
        return self.steps[i], self.values[i]

    def keep(self, s: int, factors: list[float]) -> None:
        i = bisect.bisect_left(self.steps, s)
        if i == len(self.steps) or self.steps[i] != s:
            self.steps.insert(i, s)
            self.values.insert(i, factors)
