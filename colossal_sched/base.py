"""The base class: a learning-rate schedule that is a pure function of the step.

**A new schedule** is a module with a :class:`~colossal_sched.plan.PhasedLR` subclass of three methods, as ``linear.py``::

    class LinearWarmupLR(PhasedLR):
        def __init__(self, optimizer, total_steps: int, warmup_steps: int = 0, last_epoch: int = -1, **kwargs):
            super().__init__(**self._arguments(locals()))  # ColossalAI's signature, nothing else

        def _configure(self, total_steps: int, warmup_steps: int = 0) -> None:  # each hyperparameter: default, check
            self.total_steps = V.integer("total_steps", total_steps, 1)
            self.warmup_steps = V.warmup(warmup_steps, self.total_steps, decay_follows=True)

        def _plan(self) -> tuple[list[Phase], list[int]]:  # the curve: phases and boundaries
            w = self.warmup_steps
            return ([Warmup(w, denominator=w + 1)] if w else []) + [Linear(self.total_steps - w, 0.0)], [w] if w else []

Defining it registers it (``SCHEDULERS``, ``build_lr_scheduler``, the CLI); ``step``, ``lr_at``, ``lr_table``, the
range check, the state, the fingerprint and ``replan`` follow from the plan. Both defaults of a hyperparameter must
be equal (tested for every class). The other methods here serve what phases cannot say (user functions, OneCycleLR's
momentum). **A new phase** goes in :mod:`colossal_sched.phases` (see there).
"""
from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
import sys
import warnings
from typing import Any, ClassVar, Iterable

import numpy as np
import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from . import _validate as V
from . import param_keys
from ._ops import SCALAR, VECTOR, Ops
from .clock import unit as _unit
from .errors import CheckpointError, InvalidLRError, MissingInitialLRError, ReplanError, ScheduleMismatchError
from .rollback import groups_unchanged_on_error, unchanged_on_error
from .state import FORMAT_VERSION, SavedState, group_names, read_state

_CHAINED_STEP = torch.optim.lr_scheduler.ChainedScheduler.step.__code__
_getframe = sys._getframe

#: every scheduler class of this package by name, registered when its class statement runs
REGISTRY: dict[str, type["ClosedFormLR"]] = {}


class ClosedFormLR(LRScheduler):
    r"""Base of every colossal_sched scheduler: the lr at step :math:`t` is a closed-form function
    :math:`\mathrm{lr}_g(t) = f_g(\min(t, T))` of the number of scheduler steps taken
    (``last_epoch``), never of the optimizer's current lr. How to write one: the module docstring.
    """

    hyperparams: tuple[str, ...] = ("total_steps",)
    colossalai: ClassVar[bool] = False
    """One of ``colossalai.nn.lr_scheduler``'s 14 schedulers: the same name and constructor signature."""
    compat_kwargs: ClassVar[tuple[str, ...]] = ("num_steps_per_epoch",)
    """Keywords a constructor with ``**kwargs`` accepts that do not change the schedule (ColossalAI's builders pass them)."""
    rebuildable: ClassVar[bool] = True
    """A saved state holds the whole schedule, so it can be rebuilt from it (:meth:`from_state`); False where
    user functions decide the lr (LambdaLR, MultiplicativeLR), which a state cannot hold."""
    unit: str = "updates"
    """What the step counts (:meth:`counting`): ``"updates"``, ``"samples"`` or ``"tokens"``."""
    key: str = "lr"
    """The param-group hyperparameter this schedule writes (:meth:`for_key`); its "base lrs" are that key's values."""
    _companions: tuple["ClosedFormLR", ...] = ()
    total_steps: int

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        """``hyperparams`` are ``_configure``'s parameters unless the class lists them; a concrete class of this
        package is registered by name (``SCHEDULERS``, ``build_lr_scheduler``) when it is defined."""
        super().__init_subclass__(**kwargs)
        if "_configure" in cls.__dict__ and "hyperparams" not in cls.__dict__:
            cls.hyperparams = tuple(list(inspect.signature(cls._configure).parameters)[1:])
        if not abstract and cls.__module__.startswith("colossal_sched.") and not cls.__name__.startswith("_"):
            REGISTRY[cls.__name__] = cls

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1, **hyperparams: Any) -> None:
        """``hyperparams`` (see :meth:`_arguments`) go to :meth:`_configure`, which checks them; a subclass
        that configured itself already passes none."""
        if not isinstance(optimizer, Optimizer):
            raise V.ArgumentTypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if hyperparams:
            self._configure(**hyperparams)
        last_epoch = V.step("last_epoch", last_epoch, -1)
        with groups_unchanged_on_error(optimizer):  # a refused schedule leaves the optimizer as it was
            self.base_lrs = self._initial_lrs(last_epoch)
            self._check_range()
            self._step_count = 0
            self._apply(max(last_epoch, 0))

    @classmethod
    def for_key(cls, key: str, optimizer: Optimizer, *args: Any, **kwargs: Any) -> "ClosedFormLR":
        """This schedule of another param-group hyperparameter than the lr: ``weight_decay`` (Megatron's start_wd to
        end_wd, each group relative to its own: ``ComposedLR.for_key("weight_decay", opt, T, [{"type": "product",
        "factors": [{"type": "cosine", "end_lr": end_wd / start_wd}]}])``; an absolute ``eta_min`` would give a
        no-decay group weight decay), ``momentum``, Adam's ``beta1`` (kept in ``[0, 1)``) or a key of your own; the
        group's value is the peak (``initial_<key>`` on a resume). Driven with the lr by :meth:`add_schedules`."""
        if not isinstance(key, str) or not key or key == "initial_lr":
            raise V.ArgumentTypeError(f"key must be a param-group key (a non-empty str such as 'weight_decay'), got {key!r}")
        sched = cls.__new__(cls)
        if key != "lr":
            sched.key = key
        sched.__init__(optimizer, *args, **kwargs)
        return sched

    def add_schedules(self, *schedules: "ClosedFormLR") -> "ClosedFormLR":
        """Drive ``schedules`` (of other keys, on the same optimizer, counting the same unit) with this one: they step,
        save, load, re-plan and are fingerprinted (so synced and checked on every rank) with it. Returns this scheduler."""
        param_keys.check_companions(self, schedules)
        self._companions = (*self._companions, *schedules)
        self._fingerprint_cache = None
        for c in schedules:
            c._apply(max(self._last_epoch, 0))
        return self

    @property
    def last_epoch(self) -> int:
        """Scheduler steps taken (torch's name); -1 before the first step. Validated on assignment."""
        return self._last_epoch

    @last_epoch.setter
    def last_epoch(self, value: int) -> None:
        self._last_epoch = value if type(value) is int and -1 <= value <= V.MAX_STEP else V.step("last_epoch", value, -1)

    # ----------------------------------------------------------------- set-up
    def _arguments(self, args: dict[str, Any]) -> dict[str, Any]:
        """What :meth:`__init__` takes, from the ``locals()`` of a constructor with ColossalAI's signature:
        ``optimizer``, ``last_epoch`` and each hyperparameter given, by name or, where the signature has
        none, through ``**kwargs`` (whose other keys are refused, but for ``compat_kwargs``)."""
        kwargs = args.get("kwargs", {})
        V.unknown_kwargs(type(self).__name__, kwargs, [*self.compat_kwargs, *(n for n in self.hyperparams if n not in args)])
        given = {**kwargs, **args}
        hyperparams = {name: given[name] for name in self.hyperparams if name in given}
        return {"optimizer": args["optimizer"], "last_epoch": args.get("last_epoch", -1), **hyperparams}

    def _configure(self, **hyperparams: Any) -> None:
        raise NotImplementedError

    def _critical_steps(self) -> set[int]:
        """Steps where the lr can take its extreme values: 0 and ``total_steps`` here (a schedule monotone
        in between); :class:`~colossal_sched.plan.PhasedLR` adds each side of every phase boundary."""
        return {0, self.total_steps}

    def _check_range(self) -> None:
        """Refuse a schedule whose lr is not finite and ``>= 0`` somewhere in ``[0, total_steps]`` (at construction
        and before a load is committed); :meth:`_critical_steps` are enough: every formula is monotone between them."""
        if self.total_steps > V.MAX_STEP:
            raise ValueError(f"total_steps must be an int in [1, 2**62], got {self.total_steps}")
        for t in sorted(self._critical_steps()):
            try:
                lrs = self._lrs(t, SCALAR)
            except OverflowError:
                lrs = [math.inf] * len(self.base_lrs)
            momentum = self.key in ("momentum", param_keys.BETA1)
            for g, lr in enumerate(lrs):
                if not (0.0 <= lr < 1.0 if momentum else 0.0 <= lr <= V.MAX_FLOAT):
                    raise InvalidLRError(
                        f"{type(self).__name__}: the {self.key} of param_groups[{g}] at step {t} would be {lr}; every "
                        f"{self.key} in [0, total_steps={self.total_steps}] must be "
                        f"{'in [0, 1)' if momentum else 'finite and >= 0'} (base {self.base_lrs[g]}, "
                        f"{V.short(self.hyperparameters(), 300)})"
                    )

    def _initial_lrs(self, last_epoch: int) -> list[float]:
        """Base lrs by torch's rule: ``initial_lr`` is set from ``lr`` on a fresh start and required on a resume."""
        if self.key != "lr":
            return param_keys.initial_values(self.optimizer, self.key, last_epoch)
        base = []
        for i, group in enumerate(self.optimizer.param_groups):
            param_keys.check_device(group, i, "lr")
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

    def counting(self, unit: str) -> "ClosedFormLR":
        """Declare what the step counts: ``"updates"`` (the default), ``"samples"`` or ``"tokens"`` consumed. Every
        length (``total_steps``, ``warmup_steps``, milestones, re-plans) and every step given (``step_to``, ``lr_at``,
        ``lr_table``) is then in that unit; a hook advances the scheduler by what each update consumed. Declared
        before the first step; returns the scheduler."""
        unit = _unit("unit", unit)
        if unit != self.unit and self._last_epoch > 0:
            raise ValueError(f"unit must be declared before the first step ({type(self).__name__} is at step "
                             f"{self._last_epoch} in {self.unit}); build the scheduler again to count {unit}")
        if unit != "updates" or "unit" in self.__dict__:
            self.unit = unit
        self._fingerprint_cache = None
        return self

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's hyperparameters, as plain data."""
        return {name: _plain(getattr(self, name)) for name in self.hyperparams}

    def schedule_spec(self) -> dict[str, Any]:
        """What shapes the curve apart from the step and the base lrs: class and every
        hyperparameter (a subclass adds anything else that does, e.g. re-plans). Plain JSON data;
        :meth:`fingerprint` hashes it, and ranks compare it field by field when fingerprints differ."""
        spec = {"class": type(self).__name__, "hyperparams": self.hyperparameters(), **self._identity()}
        return spec if not self._companions else {**spec, "schedules": {c.key: c.schedule_spec() for c in self._companions}}

    def _identity(self) -> dict[str, str]:
        """What a state and a spec say besides class and hyperparameters where it is not the default: unit, key."""
        return {**({} if self.unit == "updates" else {"unit": self.unit}), **({} if self.key == "lr" else {"key": self.key})}

    def fingerprint(self) -> int:
        """A stable 62-bit hash of :meth:`schedule_spec` (SHA-256 of its canonical JSON): equal on two
        ranks, or two runs, exactly when they built the same schedule."""
        key = [type(self), self.unit, self.key, [c.fingerprint() for c in self._companions], [getattr(self, name, None) for name in self.hyperparams], getattr(self, "replans", None),
               self.__dict__.get("_configured_total")]
        cached = self.__dict__.get("_fingerprint_cache")
        if cached is not None and cached[0] == key:  # what shapes the curve is unchanged: skip the JSON and hash
            return cached[1]
        text = json.dumps(self.schedule_spec(), sort_keys=True, separators=(",", ":"), allow_nan=True, default=repr)
        value = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 2
        self._fingerprint_cache = (copy.deepcopy(key), value)
        return value

    def phase_boundaries(self) -> list[tuple[str, int]]:
        """``(label, step)`` where a phase of the schedule starts, then ``("end", total_steps)``: what
        ``preview``, ``show``, ``plot`` and ``inspect`` mark (schedules of phases list theirs)."""
        return [("end", self.total_steps)]

    def replan(self, total_steps: int, at_step: int | None = None) -> None:
        """Change the length of the running schedule; schedules made of phases
        (:class:`~colossal_sched.plan.PhasedLR`) can, this one cannot: :class:`ReplanError`."""
        raise ReplanError(
            f"{type(self).__name__} cannot be re-planned: its shape is not made of phases that can be re-fitted to a "
            "new total_steps (user functions of the step, or OneCycleLR's cycle); build a new scheduler instead"
        )

    # ------------------------------------------------------------- the schedule
    def _lrs(self, t: Any, ops: Ops) -> list[Any]:
        """Per-group lr at step(s) ``t`` (already clamped to ``[0, total_steps]``)."""
        raise NotImplementedError

    def _momenta(self, t: Any, ops: Ops) -> list[Any] | None:
        """Per-group momentum at step(s) ``t`` where the schedule cycles it, else None."""
        return None

    def lr_at(self, step: int) -> list[float]:
        """The lr of every param group after ``step`` scheduler steps (pure: nothing is changed)."""
        return self._values(V.step("step", step))[0]

    def momentum_at(self, step: int) -> list[float] | None:
        """The cycled momentum of every param group after ``step`` steps, or None if not cycled."""
        return self._values(V.step("step", step))[1]

    def lr_table(self, steps: Iterable[int] | np.ndarray) -> np.ndarray:
        """``lr_at`` for many steps at once: an array of shape ``(len(steps), n_groups)``."""
        return self._table(steps, self._lrs)

    def momentum_table(self, steps: Iterable[int] | np.ndarray) -> np.ndarray | None:
        """``momentum_at`` for many steps at once, or None if momentum is not cycled."""
        return None if self._momenta(0, SCALAR) is None else self._table(steps, self._momenta)

    def _table(self, steps: Iterable[int] | np.ndarray, fn: Any) -> np.ndarray:
        tc = np.minimum(V.steps("steps", steps), self.total_steps, dtype=np.float64)
        cols = fn(tc, VECTOR)
        if isinstance(cols, np.ndarray) and cols.ndim == 2:  # already one row per group (PhasedLR)
            return cols.T
        out = np.empty((len(cols), tc.size))  # filled by rows, returned transposed: no extra copy
        for row, col in zip(out, cols):
            row[:] = col
        return out.T

    # -------------------------------------------------------------- stepping
    def step(self, epoch: int | None = None) -> None:
        """Advance one step (or, like torch's deprecated ``step(epoch)``, jump to ``epoch``).

        Refused inside torch's ``ChainedScheduler``, which multiplies the lrs of recursive
        schedulers: these set the lr as a function of the step, so only the last one would count.
        """
        if _getframe(1).f_code is _CHAINED_STEP:
            raise TypeError(
                f"torch.optim.lr_scheduler.ChainedScheduler cannot chain colossal_sched's {type(self).__name__}: it "
                "sets the lr as a function of the step instead of multiplying the optimizer's lr, so only the last "
                "scheduler's lr would count. Compose schedules with colossal_sched.ComposedLR, a "
                "colossal_sched.LambdaLR of the product, or torch's SequentialLR (one after another)"
            )
        if self.unit != "updates" and epoch is None:
            raise ValueError(f"{type(self).__name__} counts {self.unit}: step() cannot tell how many were consumed; "
                             f"use step_to(consumed {self.unit}) or LRSchedulerHook.step(global_step, {self.unit}=...)")
        self._step_count += 1
        step = self._last_epoch + 1 if epoch is None else V.step("epoch", epoch)
        lrs, momenta = self._values(step)  # what _apply does, one call less (and no *args: a slow call in CPython)
        self._write(step, lrs, momenta)

    def _update_lr(self, epoch: int | None = None) -> None:
        """torch's internal step (``SequentialLR`` calls ``_update_lr(0)`` at a milestone)."""
        self._apply(self._last_epoch + 1 if epoch is None else V.step("epoch", epoch))

    def step_to(self, global_step: int) -> None:
        """Jump to ``global_step`` in O(1) and write its lrs (and momenta) into the optimizer."""
        self._apply(V.step("global_step", global_step))

    def _apply(self, step: int) -> None:
        lrs, momenta = self._values(step)
        self._write(step, lrs, momenta)

    def write(self, step: int, lrs: list[float], momenta: list[float] | None = None) -> None:
        """Put ``lrs`` (and ``momenta``) into the optimizer as the values of ``step`` (a tensor lr is filled in
        place); an lr that is not finite and ``>= 0``, or a momentum outside ``[0, 1)``, raises
        :class:`InvalidLRError` before anything is written."""
        step = V.step("step", step)
        if momenta is not None and len(momenta) != len(lrs):
            raise ValueError(f"{type(self).__name__}: {len(lrs)} lrs but {len(momenta)} momenta to write")
        if not all(0.0 <= lr <= V.MAX_FLOAT for lr in lrs) or (momenta is not None and not all(0.0 <= m < 1.0 for m in momenta)):
            raise InvalidLRError(
                f"{type(self).__name__}: refusing to write lrs {V.short(lrs)} / momenta {V.short(momenta)} for step "
                f"{step}: every lr must be finite and >= 0, every momentum in [0, 1)"
            )
        self._write(step, list(lrs), None if momenta is None else list(momenta))

    def _write(self, step: int, lrs: list[float], momenta: list[float] | None) -> None:
        """:meth:`write` for values this scheduler computed itself (``step`` already validated): the lr (or key) and
        momentum of each group in one pass, by index (``zip``'s tuples cost more on every step's path)."""
        groups = self.optimizer.param_groups
        if len(groups) != len(lrs):
            raise ValueError(
                f"{type(self).__name__} has {len(lrs)} lrs to write but the optimizer now has {len(groups)} param groups"
            )
        key, i = self.key, 0
        for group in groups:
            if key != "lr":
                param_keys.write(group, key, lrs[i])
            elif type(group["lr"]) is float or not isinstance(group["lr"], torch.Tensor):
                group["lr"] = lrs[i]
            else:
                group["lr"].fill_(lrs[i])
            if momenta is not None:
                if "betas" in group:
                    betas = group["betas"]
                    group["betas"] = (momenta[i], betas[1]) if len(betas) == 2 else (momenta[i], *betas[1:])
                else:
                    group["momentum"] = momenta[i]
            i += 1
        self._last_epoch = step
        self._last_lr = lrs
        for c in self._companions:
            c._apply(step)

    def get_lr(self) -> list[float]:
        """The lrs at ``last_epoch`` (torch API)."""
        return self.lr_at(max(self._last_epoch, 0))

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
            **self._identity(),
            **({"schedules": {c.key: c.state_dict() for c in self._companions}} if self._companions else {}),
            **self._extra_state(),
        }

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def load_state_dict(self, state_dict: dict[str, Any] | SavedState, strict: bool = True) -> None:
        """Restore a state and write that step's lrs into the optimizer; all or nothing.

        Accepts this package's states, torch's and colossalai's of the same name, or a
        :class:`~colossal_sched.state.SavedState`. Another class or other hyperparameters raise
        :class:`ScheduleMismatchError`; with ``strict=False`` they are accepted with a warning (the saved
        hyperparameters where the class is the same, the saved step in any case). The saved base lrs are
        always adopted, with a warning where they differ. A malformed state raises :class:`CheckpointError`.
        """
        state = read_state(state_dict).for_scheduler(self)
        saved_lrs, base_lrs = state["base_lrs"], list(self.base_lrs)
        if len(saved_lrs) != len(base_lrs):
            raise CheckpointError(
                f"saved scheduler state has {len(saved_lrs)} param group(s), this optimizer has "
                f"{len(base_lrs)}: base_lrs saved={V.short(saved_lrs)}, current={V.short(base_lrs)}"
            )
        diffs = self.diff_state(state)
        if diffs and strict:
            raise ScheduleMismatchError(diffs)
        with unchanged_on_error(self):
            self._load(state)
        if diffs:
            warnings.warn(str(ScheduleMismatchError(diffs, hint="accepted with strict=False")), stacklevel=2)
        if saved_lrs != base_lrs:
            warnings.warn(f"adopting the saved base_lrs {V.short(saved_lrs)} in place of {V.short(base_lrs)}", stacklevel=2)

    def _load(self, state: dict[str, Any]) -> None:
        """Apply ``state`` (:meth:`SavedState.for_scheduler`'s form) and write the saved step's lrs: the
        saved hyperparameters where the class is this one's, base lrs and extra state. A state that does
        not give a valid schedule raises :class:`CheckpointError`; the caller rolls back (:func:`unchanged_on_error`)."""
        try:
            if state["class"] == type(self).__name__ and state["hyperparams"] is not None:
                if missing := [name for name in self.hyperparams if name not in state["hyperparams"]]:  # no defaults
                    raise ValueError(f"hyperparameter(s) {missing} missing from the saved hyperparams")
                self._configure(**state["hyperparams"])
                self.unit = _unit("unit", state.get("unit", "updates"))  # a load may change it (strict=False)
            self.base_lrs = list(state["base_lrs"])  # checked by read_state
            self._load_extra_state(state)
            self._check_range()
            for c in self._companions:  # their states, checked with this one's (a missing one: a diff, or refused here)
                c._load(read_state(state["schedules"][c.key]).for_scheduler(c))
        except (TypeError, ValueError, OverflowError, RecursionError, KeyError) as e:
            raise CheckpointError(f"invalid {type(self).__name__} state: {V.short(str(e), 600)}") from None
        step = state["last_epoch"]
        if step < 0:  # saved before its first step (e.g. a later stage of SequentialLR)
            self.last_epoch = -1
            return
        self.write(step, *self._values(step))

    def _values(self, step: int) -> tuple[list[float], list[float] | None]:
        """The lrs and momenta after ``step >= 0`` steps: the closed forms at ``min(step, total_steps)``
        (the one place that clamps a step; ``step()``, ``step_to``, ``lr_at`` and loads all come here)."""
        t = step if step < self.total_steps else self.total_steps
        return self._lrs(t, SCALAR), self._momenta(t, SCALAR)

    @classmethod
    def from_state(cls, state: Any, optimizer: Optimizer | None = None) -> "ClosedFormLR":
        """The schedule a saved state holds, rebuilt on ``optimizer`` (default: a stand-in with the saved base
        lrs, for inspection) at the saved step. :class:`CheckpointError` where the state does not hold a whole
        schedule (torch's or ColossalAI's; user functions, see :attr:`rebuildable`) or it does not build."""
        from .rebuild import rebuild  # it imports this module

        return rebuild(state, optimizer)

    def diff_state(self, state: dict[str, Any], with_base_lrs: bool = False) -> list[tuple[str, Any, Any]]:
        """``(field, saved, current)`` for each field where a native state differs from this scheduler:
        class, hyperparameters (and, with ``with_base_lrs``, the base lrs)."""
        diffs: list[tuple[str, Any, Any]] = []
        if state.get("unit", "updates") != self.unit:
            diffs.append(("unit", state.get("unit", "updates"), self.unit))
        if state["class"] != type(self).__name__:
            diffs.append(("class", state["class"], type(self).__name__))
        elif state["hyperparams"] is not None:
            mine = self.hyperparameters()
            for name in sorted(set(mine) | set(state["hyperparams"])):
                saved, current = state["hyperparams"].get(name, "<missing>"), mine.get(name, "<missing>")
                if _plain(saved) != current:
                    diffs.append((name, saved, current))
            diffs.extend(self._diff_extra_state(state))
        diffs.extend(state.get("foreign_diffs", []))
        saved = state.get("schedules") or {}
        if state.get("key", "lr") != self.key:
            diffs.append(("key", state.get("key", "lr"), self.key))
        if sorted(saved) != sorted(c.key for c in self._companions):
            diffs.append(("schedules", sorted(saved), sorted(c.key for c in self._companions)))
        for c in self._companions:
            if c.key in saved:
                sub = read_state(saved[c.key]).for_scheduler(c)
                diffs.extend((f"{c.key}.{name}", a, b) for name, a, b in c.diff_state(sub, with_base_lrs))
        if with_base_lrs and list(state["base_lrs"]) != list(self.base_lrs):
            diffs.append(("base_lrs", list(state["base_lrs"]), list(self.base_lrs)))
        return diffs

    def _diff_extra_state(self, state: dict[str, Any]) -> list[tuple[str, Any, Any]]:
        """Differences in what a subclass saves besides its hyperparameters and shapes the curve."""
        return []

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        more = "".join(f", {k}={v!r}" for k, v in self._identity().items())
        return f"{type(self).__name__}({args}, last_epoch={self.last_epoch}{more})"


def _as_float(value: Any) -> Any:
    return float(value.item()) if isinstance(value, torch.Tensor) else value


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value
