r"""The learning-rate range test (Smith 2015, "Cyclical Learning Rates for Training Neural Networks", section 3.3).

Train for a few updates while the lr grows from ``start_lr`` to ``end_lr``, record the loss, stop once it
diverges, suggest the lr where it fell fastest, and put the model and the optimizer back as they were.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import torch

from . import _validate as V

MODES = ("exp", "linear")
MAX_UPDATES = 10**6


@dataclass(frozen=True)
class RangeTestResult:
    """What :func:`lr_range_test` measured (equal on every rank of the dp group).

    Attributes:
        lrs: the lr each update ran with.
        losses: each update's loss, averaged over the dp group.
        smoothed: the bias-corrected moving average of ``losses`` (what the stop and the suggestion read).
        suggestion: the lr at the steepest descent of ``smoothed`` over ``log(lr)``, or None (``note`` says why).
        stopped_early: True when the loss diverged or the data ran out (``reason`` says which, and where).
        reason: why the sweep ended: ``"completed"``, the divergence, or the data running out.
        note: why there is no suggestion (None when there is one).
        mode: the sweep's spacing, ``"exp"`` or ``"linear"``.
    """

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    suggestion: float | None
    stopped_early: bool
    reason: str
    note: str | None
    mode: str

    @property
    def updates(self) -> int:
        """The optimizer updates the test ran (every one of them undone)."""
        return len(self.lrs)


def sweep(start_lr: float, end_lr: float, num_updates: int, mode: str = "exp") -> list[float]:
    r"""The lrs of the sweep: :math:`lr_i = s\,(e/s)^{i/(N-1)}` (``exp``) or :math:`s + (e - s)\,i/(N-1)`
    (``linear``) for :math:`i = 0 \dots N-1`; the first is ``start_lr`` and the last ``end_lr``, exactly."""
    space = np.geomspace if mode == "exp" else np.linspace
    return [float(x) for x in space(start_lr, end_lr, num_updates)]


def suggest(lrs: Iterable[float], smoothed: Iterable[float], skip_start: int = 10, skip_end: int = 1
            ) -> tuple[float | None, str | None]:
    """``(lr, None)`` at the most negative ``np.gradient(smoothed, log(lr))`` over the points left after dropping
    ``skip_start`` first and ``skip_end`` last ones (and any from the first non-finite value on), or
    ``(None, why)`` when fewer than 2 points are left or the smoothed loss never falls there."""
    lrs, smoothed = np.asarray(list(lrs), dtype=float), np.asarray(list(smoothed), dtype=float)
    bad = np.flatnonzero(~np.isfinite(smoothed))
    end = min(len(smoothed) - skip_end, bad[0] if bad.size else len(smoothed))
    if end - skip_start < 2:
        return None, (f"too few points to suggest an lr: {len(smoothed)} updates ({max(end - skip_start, 0)} finite ones "
                      f"after skip_start={skip_start}, skip_end={skip_end}; 2 needed)")
    x, y = np.log(lrs[skip_start:end]), smoothed[skip_start:end]
    slope = np.gradient(y, x)
    best = int(np.argmin(slope))
    if not slope[best] < 0:
        return None, f"the smoothed loss never falls between lr {lrs[skip_start]:.3g} and {lrs[end - 1]:.3g}"
    return float(lrs[skip_start + best]), None


def lr_range_test(model: torch.nn.Module, optimizer: torch.optim.Optimizer, data: Iterable[Any],
                  loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor], *, start_lr: float = 1e-7,
                  end_lr: float = 10.0, num_updates: int = 100, mode: str = "exp", beta: float = 0.98,
                  diverge: float = 4.0, skip_start: int = 10, skip_end: int = 1, dp_group: Any = None
                  ) -> RangeTestResult:
    r"""Sweep the lr over ``num_updates`` optimizer updates, stop when the loss diverges, suggest an lr, undo it all.

    Update :math:`i` sets every param group's lr to :math:`lr_i` (:func:`sweep`: ``exp``
    :math:`lr_i = s\,(e/s)^{i/(N-1)}`, ``linear`` :math:`s + (e - s)\,i/(N-1)`), then runs
    ``loss = loss_fn(model, batch)``, ``loss.backward()``, ``optimizer.step()``, ``optimizer.zero_grad()`` on the
    next batch of ``data``. The loss :math:`L_i` is averaged over ``dp_group`` and smoothed with a bias-corrected
    moving average :math:`a_i = \beta a_{i-1} + (1-\beta) L_i`, :math:`\hat L_i = a_i / (1 - \beta^{i+1})`. The
    sweep stops after update :math:`i` when :math:`\hat L_i` is not finite or
    :math:`\hat L_i > b + (\mathrm{diverge} - 1)\,|b|` with :math:`b = \min_{j \le i} \hat L_j`
    (:math:`\hat L_i > \mathrm{diverge} \cdot b` for a positive loss), or when ``data`` runs out on any rank. The
    suggestion is :func:`suggest` of the curve.

    The average costs one ``all_reduce`` per update (the loss and, per rank, whether its next batch came),
    so every rank holds the same curve, stops at the same update and suggests the same lr; the next batch is
    fetched before that reduce, so no rank enters a forward (and a DDP/FSDP collective) that another cannot.
    An exception raised on one rank only (by ``loss_fn`` or ``data``) leaves the others waiting in that reduce
    until the group's timeout, as it would in training.

    Afterwards, also after an exception, the model's parameters, buffers, gradients and train/eval modes, the
    optimizer's state and param groups (tensor lrs in place) and torch's RNG states are what they were, bit
    for bit. ``data`` is consumed.

    Args:
        model: the model ``loss_fn`` runs (e.g. DDP or FSDP-wrapped), put in train mode for the sweep.
        optimizer: steps the model's parameters; every param group gets the swept lr.
        data: an iterable of batches, one per update.
        loss_fn: ``loss_fn(model, batch)``: a scalar loss tensor.
        start_lr, end_lr: the sweep's first and last lr, ``0 < start_lr < end_lr``.
        num_updates: the sweep's length :math:`N`, in ``[2, 10**6]``.
        mode: ``"exp"`` (geometric) or ``"linear"``.
        beta: the smoothing factor in ``[0, 1)``.
        diverge: the stop factor, ``> 1``.
        skip_start, skip_end: points of the curve the suggestion ignores at its start and end (as Lightning's).
        dp_group: the process group (or 1-D DeviceMesh) to average over; None: the default group when torch.distributed is
            initialized, else this process alone.

    Raises:
        ValueError: a bad argument (naming it and what is allowed), before anything changes.
    """
    _check(model, optimizer, loss_fn, start_lr, end_lr, num_updates, mode, beta, diverge, skip_start, skip_end)
    lrs = sweep(float(start_lr), float(end_lr), num_updates, mode)
    group = _Group(dp_group)
    saved = _Snapshot(model, optimizer)
    try:
        model.train()
        curve, reason = _run(model, optimizer, iter(data), loss_fn, lrs, group, float(beta), float(diverge))
    finally:
        saved.restore()
    done = [lrs[: len(curve[0])], *curve]
    suggestion, note = suggest(done[0], done[2], skip_start, skip_end)
    return RangeTestResult(*map(tuple, done), suggestion, reason != "completed", reason, note, mode)


def _check(model, optimizer, loss_fn, start_lr, end_lr, num_updates, mode, beta, diverge, skip_start, skip_end):
    if not isinstance(model, torch.nn.Module):
        raise V.ArgumentTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise V.ArgumentTypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not callable(loss_fn):
        raise V.ArgumentTypeError(f"loss_fn must be callable as loss_fn(model, batch), got {V.short(loss_fn)}")
    start = V.real("start_lr", start_lr, low=0, low_open=True)
    end = V.real("end_lr", end_lr, low=0, low_open=True)
    if start >= end:
        raise ValueError(f"start_lr must be < end_lr (the sweep goes up), got start_lr={start!r}, end_lr={end!r}")
    if V.integer("num_updates", num_updates, 2) > MAX_UPDATES:
        raise ValueError(f"num_updates must be an int in [2, {MAX_UPDATES}] (a sweep, not a run), got {num_updates}")
    V.choice("mode", mode, MODES)
    V.real("beta", beta, low=0, high=1, high_open=True)
    V.real("diverge", diverge, low=1, low_open=True)
    V.integer("skip_start", skip_start, 0)
    V.integer("skip_end", skip_end, 0)


class _Group:
    """The dp group's one ``all_reduce`` per update: ``[loss, rank 0's batch missing, rank 1's, ...]``, summed."""

    def __init__(self, group: Any) -> None:
        import torch.distributed as dist

        on = dist.is_available() and dist.is_initialized()
        group = group.get_group() if hasattr(group, "get_group") else group  # a 1-D DeviceMesh: its process group
        self.group, self.size = group, dist.get_world_size(group) if on else 1
        self.rank = dist.get_rank(group) if on else 0
        self.reduce = dist.all_reduce if on and self.size > 1 else None
        self.device = _device(group) if on else torch.device("cpu")

    def average(self, loss: torch.Tensor | None, missing: bool) -> tuple[float, list[int]]:
        """The loss averaged over the group (0.0 with no loss: before the first update) and the group ranks
        whose next batch is missing."""
        buf = torch.zeros(1 + self.size, dtype=torch.float64, device=self.device)
        if loss is not None:
            buf[0] = loss.detach().reshape(())
        buf[1 + self.rank] = float(missing)
        if self.reduce is not None:
            self.reduce(buf, group=self.group)
        row = buf.tolist()
        return row[0] / self.size, [r for r, m in enumerate(row[1:]) if m]


def _device(group: Any) -> torch.device:
    """Where the group's collectives take tensors: CUDA for NCCL, else the CPU."""
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend(group) == "nccl" else torch.device("cpu")


def _run(model, optimizer, batches, loss_fn, lrs, group, beta, diverge):
    """The sweep: ``((losses, smoothed), reason)``."""
    losses, smoothed, avg, best = [], [], 0.0, math.inf
    batch, missing = _next(batches)
    _, out = group.average(None, missing)
    if out:
        return (losses, smoothed), f"the data ran out on dp rank(s) {out} before update 0"
    for i, lr in enumerate(lrs):
        for g in optimizer.param_groups:
            if isinstance(g["lr"], torch.Tensor):
                g["lr"].fill_(lr)
            else:
                g["lr"] = lr
        loss = loss_fn(model, batch)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise V.ArgumentTypeError(f"loss_fn must return a one-element loss tensor, got {V.short(loss)}")
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        batch, missing = _next(batches) if i + 1 < len(lrs) else (None, False)
        mean, out = group.average(loss, missing)
        avg = beta * avg + (1 - beta) * mean
        losses.append(mean)
        smoothed.append(avg / (1 - beta ** (i + 1)))
        best = min(best, smoothed[-1])
        if not math.isfinite(smoothed[-1]):
            return (losses, smoothed), f"diverged at update {i} (lr {lr:.3g}): the loss is {mean}"
        if smoothed[-1] > best + (diverge - 1) * abs(best):
            return (losses, smoothed), (f"diverged at update {i} (lr {lr:.3g}): smoothed loss {smoothed[-1]:.4g} > "
                                        f"best {best:.4g} + (diverge {diverge:g} - 1) x |best|")
        if out:
            return (losses, smoothed), f"the data ran out on dp rank(s) {out} after {i + 1} updates"
    return (losses, smoothed), "completed"


def _next(batches):
    try:
        return next(batches), False
    except StopIteration:
        return None, True


def _clone(value: Any) -> Any:
    return value.detach().clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value)


def _put(holder: dict, key: Any, value: Any) -> None:
    """``holder[key] = value``, copied into the tensor there where shapes and dtypes match (its identity kept)."""
    now = holder.get(key)
    if isinstance(now, torch.Tensor) and isinstance(value, torch.Tensor) and now.shape == value.shape \
            and now.dtype == value.dtype and type(now) is type(value):
        with torch.no_grad():
            now.copy_(value)
    else:
        holder[key] = _clone(value)


class _Snapshot:
    """Copies of everything the sweep changes, put back in place by :meth:`restore`."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.optimizer = model, optimizer
        params = list({id(p): p for p in [*model.parameters(), *(p for g in optimizer.param_groups for p in g["params"])]}
                      .values())  # the optimizer may step tensors the model does not hold
        self.tensors = [(t, t.detach().clone()) for t in [*params, *model.buffers()]]
        self.grads = [(p, None if p.grad is None else p.grad.detach().clone()) for p in params]
        self.modes = [(m, m.training) for m in model.modules()]
        self.groups = [{k: _clone(v) for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
        self.state = {p: {k: _clone(v) for k, v in s.items()} for p, s in optimizer.state.items()}
        self.rng = torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    def restore(self) -> None:
        with torch.no_grad():
            for t, kept in self.tensors:
                t.copy_(kept)
        for p, grad in self.grads:
            p.grad = grad
        for m, training in self.modes:
            m.training = training
        for g, saved in zip(self.optimizer.param_groups, self.groups):
            for key in [k for k in g if k != "params" and k not in saved]:
                del g[key]
            for key, value in saved.items():
                _put(g, key, value)
        for p in [p for p in self.optimizer.state if p not in self.state]:
            del self.optimizer.state[p]
        for p, saved in self.state.items():
            state = self.optimizer.state[p]
            for key in [k for k in state if k not in saved]:
                del state[key]
            for key, value in saved.items():
                _put(state, key, value)
        torch.set_rng_state(self.rng[0])
        if self.rng[1] is not None:
            torch.cuda.set_rng_state_all(self.rng[1])


def plot_range_test(result: RangeTestResult, path: str, *, title: str | None = None) -> str | None:
    """Write a PNG of the smoothed (and raw) loss over the lr (a log axis for ``exp``), the suggestion marked.

    Only rank 0 writes (when torch.distributed is initialized); it returns ``path``, the other ranks None."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.plot(result.lrs, result.losses, color="C0", alpha=0.3, label="loss (dp mean)")
    ax.plot(result.lrs, result.smoothed, color="C0", label="smoothed loss")
    if result.suggestion is not None:
        k = result.lrs.index(result.suggestion)
        ax.axvline(result.suggestion, color="C3", linestyle=":")
        ax.plot([result.suggestion], [result.smoothed[k]], "o", color="C3", label=f"suggested lr {result.suggestion:.3g}")
    if result.mode == "exp":
        ax.set_xscale("log")
    finite = [v for v in result.smoothed[:-1] if math.isfinite(v)]  # the diverged last point would squash the curve
    if len(finite) > 1:
        low, high = min(v for v in [*finite, *result.losses] if math.isfinite(v)), max(finite)
        ax.set_ylim(low - 0.1 * (high - low), high + 0.1 * (high - low))
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.set_title(title or f"lr range test: {result.updates} updates, {result.reason.split(':')[0]}", fontsize=9)
    fig.savefig(path)
    return path
