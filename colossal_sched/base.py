"""The base class: a learning-rate schedule that is a pure function of the step."""
from __future__ import annotations

import hashlib
import json
import warnings
from typing import Any, Iterable

import numpy as np
import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from . import _validate as V
from ._ops import SCALAR, VECTOR, Ops
from .errors import MissingInitialLRError, ScheduleMismatchError

FORMAT_VERSION = 1


class ClosedFormLR(LRScheduler):
    r"""Base of every colossal_sched scheduler: the lr at step :math:`t` is a closed-form function
    :math:`\mathrm{lr}_g(t) = f_g(\min(t, T))` of the number of scheduler steps taken
    (``last_epoch``), never of the optimizer's current lr.

    Subclasses set ``hyperparams`` (constructor arguments kept in ``state_dict``), implement
    ``_configure(**hyperparams)`` (validate and derive) and ``_lrs(t, ops)`` (the formula,
    written once for a scalar step and for an array of steps), and call
    ``ClosedFormLR.__init__`` last.
    """

    hyperparams: tuple[str, ...] = ("total_steps",)
    total_steps: int

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise V.ArgumentTypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        last_epoch = V.integer("last_epoch", last_epoch, -1)
        self.base_lrs = self._initial_lrs(last_epoch)
        self._step_count = 0
        self._apply(max(last_epoch, 0))

    # ----------------------------------------------------------------- set-up
    def _configure(self, **hyperparams: Any) -> None:
        raise NotImplementedError

    def _initial_lrs(self, last_epoch: int) -> list[float]:
        """Base lrs by torch's rule: ``initial_lr`` is set from ``lr`` on a fresh start and required on a resume."""
        base = []
        for i, group in enumerate(self.optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", _as_float(group["lr"]))
            elif "initial_lr" not in group:
                raise MissingInitialLRError(
                    f"param_groups[{i}] has no 'initial_lr': resuming {type(self).__name__} with last_epoch={last_epoch} "
                    "needs the optimizer state of the run that created it (load it first), or use last_epoch=-1 "
                    "and step_to(step) / load_state_dict(state)"
                )
            base.append(V.real(f"param_groups[{i}]['initial_lr'] (the base lr)", _as_float(group["initial_lr"]), low=0.0))
        return base

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's hyperparameters, as plain data."""
        return {name: _plain(getattr(self, name)) for name in self.hyperparams}

    def schedule_spec(self) -> dict[str, Any]:
        """What shapes the curve apart from the step and the base lrs: class and every
        hyperparameter (a subclass adds anything else that does, e.g. re-plans). Plain JSON data;
        :meth:`fingerprint` hashes it, and ranks compare it field by field when fingerprints differ."""
        return {"class": type(self).__name__, "hyperparams": self.hyperparameters()}

    def fingerprint(self) -> int:
        """A stable 62-bit hash of :meth:`schedule_spec` (SHA-256 of its canonical JSON): equal on two
        ranks, or two runs, exactly when they built the same schedule."""
        text = json.dumps(self.schedule_spec(), sort_keys=True, separators=(",", ":"), allow_nan=True, default=repr)
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 2

    # ------------------------------------------------------------- the schedule
    def _lrs(self, t: Any, ops: Ops) -> list[Any]:
        """Per-group lr at step(s) ``t`` (already clamped to ``[0, total_steps]``)."""
        raise NotImplementedError

    def _momenta(self, t: Any, ops: Ops) -> list[Any] | None:
        """Per-group momentum at step(s) ``t`` where the schedule cycles it, else None."""
        return None

    def lr_at(self, step: int) -> list[float]:
        """The lr of every param group after ``step`` scheduler steps (pure: nothing is changed)."""
        return self._lrs(min(V.integer("step", step, 0), self.total_steps), SCALAR)

    def momentum_at(self, step: int) -> list[float] | None:
        """The cycled momentum of every param group after ``step`` steps, or None if not cycled."""
        return self._momenta(min(V.integer("step", step, 0), self.total_steps), SCALAR)

    def lr_table(self, steps: Iterable[int] | np.ndarray) -> np.ndarray:
        """``lr_at`` for many steps at once: an array of shape ``(len(steps), n_groups)``."""
        return self._table(steps, self._lrs)

    def momentum_table(self, steps: Iterable[int] | np.ndarray) -> np.ndarray | None:
        """``momentum_at`` for many steps at once, or None if momentum is not cycled."""
        if self._momenta(0, SCALAR) is None:
            return None
        return self._table(steps, self._momenta)

    def _table(self, steps: Iterable[int] | np.ndarray, fn: Any) -> np.ndarray:
        tc = np.minimum(_step_array(steps), self.total_steps, dtype=np.float64)
        cols = fn(tc, VECTOR)
        out = np.empty((len(cols), tc.size))  # filled by rows, returned transposed: no extra copy
        for row, col in zip(out, cols):
            row[:] = col
        return out.T

    # -------------------------------------------------------------- stepping
    def step(self, epoch: int | None = None) -> None:
        """Advance one step (or, like torch's deprecated ``step(epoch)``, jump to ``epoch``)."""
        self._step_count += 1
        self._apply(self.last_epoch + 1 if epoch is None else V.integer("epoch", epoch, 0))

    def step_to(self, global_step: int) -> None:
        """Jump to ``global_step`` in O(1) and write its lrs (and momenta) into the optimizer."""
        self._apply(V.integer("global_step", global_step, 0))

    def _apply(self, step: int) -> None:
        t = step if step < self.total_steps else self.total_steps
        self.write(step, self._lrs(t, SCALAR), self._momenta(t, SCALAR))

    def write(self, step: int, lrs: list[float], momenta: list[float] | None = None) -> None:
        """Put ``lrs`` (and ``momenta``) into the optimizer as the values of ``step``.

        ``step()``, ``step_to()`` and the rank-0 broadcast all end here; a tensor lr is filled in
        place (no host-device synchronisation).
        """
        groups = self.optimizer.param_groups
        if len(groups) != len(lrs):
            raise ValueError(
                f"{type(self).__name__} has {len(lrs)} lrs to write but the optimizer now has {len(groups)} param groups"
            )
        for group, lr in zip(groups, lrs):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        if momenta is not None:
            for group, m in zip(groups, momenta):
                if "betas" in group:
                    group["betas"] = (m, *group["betas"][1:])
                else:
                    group["momentum"] = m
        self.last_epoch = step
        self._last_lr = lrs

    def get_lr(self) -> list[float]:
        """The lrs at ``last_epoch`` (torch API)."""
        return self.lr_at(self.last_epoch)

    _get_closed_form_lr = get_lr

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Plain, JSON-serializable state: class, hyperparameters, base lrs, step, format version."""
        return {
            "format_version": FORMAT_VERSION,
            "class": type(self).__name__,
            "hyperparams": self.hyperparameters(),
            "base_lrs": list(self.base_lrs),
            "group_names": group_names(self.optimizer),
            "last_epoch": self.last_epoch,
            "last_lr": list(self._last_lr),
            **self._extra_state(),
        }

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> None:
        """Restore a state and write that step's lrs into the optimizer.

        Accepts this package's states and those of torch's and colossalai's schedulers of the
        same name. A state from another class, or with other hyperparameters or base lrs, raises
        :class:`ScheduleMismatchError` naming every differing field; with ``strict=False`` it is
        accepted (with a warning): the saved hyperparameters are adopted where the class is the
        same, the saved step is taken in any case. The saved base lrs are always adopted (the
        optimizer's ``initial_lr`` may already hold the resumed run's lr), with a warning where they
        differ from this scheduler's.
        """
        from .compat import to_native_state  # local: compat knows every scheduler class

        state = to_native_state(self, state_dict)
        saved_lrs = list(state["base_lrs"])
        if len(saved_lrs) != len(self.base_lrs):
            raise ValueError(
                f"saved scheduler state has {len(saved_lrs)} param group(s), this optimizer has "
                f"{len(self.base_lrs)}: base_lrs saved={saved_lrs}, current={self.base_lrs}"
            )
        diffs = self.diff_state(state)
        if diffs:
            if strict:
                raise ScheduleMismatchError(diffs)
            warnings.warn(str(ScheduleMismatchError(diffs, hint="accepted with strict=False")), stacklevel=2)
        if saved_lrs != list(self.base_lrs):
            warnings.warn(f"adopting the saved base_lrs {saved_lrs} in place of {list(self.base_lrs)}", stacklevel=2)
        if state["class"] == type(self).__name__ and state["hyperparams"] is not None:
            self._configure(**state["hyperparams"])
        self.base_lrs = [V.real("base_lrs", lr, low=0.0) for lr in saved_lrs]
        self._load_extra_state(state)
        self._apply(V.integer("last_epoch", state["last_epoch"], 0))

    def diff_state(self, state: dict[str, Any], with_base_lrs: bool = False) -> list[tuple[str, Any, Any]]:
        """``(field, saved, current)`` for each field where a native state differs from this scheduler:
        class, hyperparameters (and, with ``with_base_lrs``, the base lrs)."""
        diffs: list[tuple[str, Any, Any]] = []
        if state["class"] != type(self).__name__:
            diffs.append(("class", state["class"], type(self).__name__))
        elif state["hyperparams"] is not None:
            mine = self.hyperparameters()
            for name in sorted(set(mine) | set(state["hyperparams"])):
                saved, current = state["hyperparams"].get(name, "<missing>"), mine.get(name, "<missing>")
                if _plain(saved) != current:
                    diffs.append((name, saved, current))
        diffs.extend(state.get("foreign_diffs", []))
        if with_base_lrs and list(state["base_lrs"]) != list(self.base_lrs):
            diffs.append(("base_lrs", list(state["base_lrs"]), list(self.base_lrs)))
        return diffs

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args}, last_epoch={self.last_epoch})"


def group_names(optimizer: Optimizer) -> list[str | None]:
    """Each param group's ``name``, or None where it has none."""
    return [g.get("name") for g in optimizer.param_groups]


def _as_float(value: Any) -> Any:
    return float(value.item()) if isinstance(value, torch.Tensor) else value


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _step_array(steps: Iterable[int] | np.ndarray) -> np.ndarray:
    """Steps as a 1-D array of non-negative integers."""
    if isinstance(steps, range):
        t = np.arange(steps.start, steps.stop, steps.step)
    else:
        t = np.asarray(steps if isinstance(steps, np.ndarray) else list(steps))
    if t.ndim != 1:
        raise ValueError(f"steps must be a 1-D sequence of ints >= 0, got shape {t.shape}")
    if t.size and not np.issubdtype(t.dtype, np.integer) and not (np.issubdtype(t.dtype, np.floating) and np.all(np.floor(t) == t)):
        raise V.ArgumentTypeError(f"steps must hold ints >= 0, got dtype {t.dtype}")
    if t.size and t.min() < 0:
        raise ValueError(f"steps must hold ints >= 0, got min {t.min()}")
    return t
