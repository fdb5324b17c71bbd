"""A saved scheduler state, read once.

:func:`read_state` turns anything that holds a scheduler state (this package's ``state_dict()``, torch's or
ColossalAI's, a hook's packed entry, a Booster JSON payload) into one checked, frozen :class:`SavedState`.
``ClosedFormLR.load_state_dict``, ``checkpoint.resume`` / ``restore`` and ``colossal-sched inspect`` take that
value and parse nothing again. :func:`check_plain` is the one plain-data validator, with one set of limits
(:data:`MAX_DEPTH`, :data:`MAX_VALUES`, :data:`MAX_STR`); ``ComposedLR`` checks its spec with it too, so every
accepted spec loads back. Another torch/ColossalAI scheduler's state is recognised by its keys (``_SIGNATURES``)
and compared field by field (``_foreign_fields``): a new one goes there.
"""
from __future__ import annotations

import dataclasses
import json
import math
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, Iterator, Mapping

from . import _validate as V
from .clock import Clock
from .errors import CheckpointError

FORMAT_VERSION = 1
HOOK_KEY = "colossal_sched"
"""The key of a hook's packed state: one JSON str (one DCP record)."""
MAX_STATE_CHARS = 1 << 20
"""A packed hook state longer than this is refused before it is parsed (a real one is about 2 KiB)."""
MAX_DEPTH = 10
"""How many levels of lists / dicts one field of a state (each hyperparameter, e.g. ComposedLR's ``phases``) may nest."""
MAX_VALUES = 1 << 16
"""How many values a state may hold in all."""
MAX_STR = 1 << 16
"""The longest str (value or key) a state may hold."""
MAX_GROUPS = 1 << 16
_SCALARS = (type(None), bool, int, float)


def check_plain(fields: Mapping[str, Any]) -> None:
    """Refuse anything in ``fields`` (name: value) but plain data: None, bool, int, float, str and lists, tuples
    and dicts (keys str or int) of them, each field nested at most :data:`MAX_DEPTH` levels, :data:`MAX_VALUES`
    values in all, no str over :data:`MAX_STR` characters. :class:`CheckpointError` names where."""
    todo: list[tuple[Any, int, str]] = [(v, 0, str(k)) for k, v in fields.items()]
    seen = 0
    while todo:
        value, depth, where = todo.pop()
        seen += 1
        kind = type(value)
        if kind in _SCALARS:
            continue
        if kind is str:
            if len(value) > MAX_STR:
                raise CheckpointError(f"corrupt scheduler state: {where[:200]} is a str of {len(value)} characters "
                                      f"(at most {MAX_STR})")
            continue
        if not isinstance(value, (Mapping, list, tuple)):
            raise CheckpointError(f"corrupt scheduler state: {where[:200]} is a {kind.__name__[:60]}, not plain data "
                                  "(None, bool, int, float, str, lists and dicts of them)")
        if depth >= MAX_DEPTH:
            raise CheckpointError(f"corrupt scheduler state: {where[:200]} nests lists / dicts more than {MAX_DEPTH} levels deep")
        if seen + len(todo) + len(value) > MAX_VALUES:
            raise CheckpointError(f"corrupt scheduler state: more than {MAX_VALUES} values")
        if isinstance(value, Mapping):
            for k, v in value.items():
                if type(k) not in (str, int) or (type(k) is str and len(k) > MAX_STR):
                    raise CheckpointError(f"corrupt scheduler state: {where[:200]} has a key {V.short(k, 60)} "
                                          f"(keys are ints or strs of at most {MAX_STR} characters)")
                todo.append((v, depth + 1, f"{where}.{V.short(k, 40)}"))
        else:
            todo.extend((v, depth + 1, f"{where}[{i}]") for i, v in enumerate(value))


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def group_names(optimizer: Any) -> list[str | None]:
    """Each param group's ``name``, or None where it has none."""
    return [g.get("name") for g in optimizer.param_groups]


@dataclasses.dataclass(frozen=True)
class SavedState:
    """A checked scheduler state; read-only (nested dicts are ``MappingProxyType``, lists tuples).

    Args:
        fields: The scheduler state, every entry checked (``base_lrs`` and the other per-group lists as floats).
        native: Written by colossal_sched; else by a torch or ColossalAI scheduler.
        cls: The class that wrote it (native), else the torch/ColossalAI classes whose keys it has ("" if none).
        base_lrs: One base lr per saved param group.
        step: Steps taken: ``last_epoch`` (-1 before the first; ColossalAI's two-stage schedulers: both stages).
        global_step: The hook's global step, where a hook saved the state.
        clock: The hook's :class:`~colossal_sched.clock.Clock` state (plain data), where a hook saved one.
        resumed: The hook's record of the last resume that chose between schedules (``step``, ``kept``,
            ``overridden`` as ``[field, checkpoint, current]``, ``how``), where it has one.
    """

    fields: Mapping[str, Any]
    native: bool
    cls: str
    base_lrs: tuple[float, ...]
    step: int
    global_step: int | None = None
    clock: Mapping[str, int] | None = None
    resumed: Mapping[str, Any] | None = None

    def resumed_record(self) -> dict[str, Any] | None:
        """:attr:`resumed` as a fresh plain dict, or None."""
        return None if self.resumed is None else _thaw(self.resumed)

    @property
    def hyperparams(self) -> dict[str, Any] | None:
        """The saved hyperparameters (a fresh dict), or None for a torch/ColossalAI state."""
        return _thaw(self.fields["hyperparams"]) if self.native else None

    def scheduler_state(self) -> dict[str, Any]:
        """The scheduler state as a fresh plain dict (what ``state_dict()`` returned, checked)."""
        return _thaw(self.fields)

    def for_scheduler(self, scheduler: Any) -> dict[str, Any]:
        """This state in this package's form, for ``scheduler``: per-group entries in the order of its param
        groups (by name where both name them); a torch/ColossalAI state gets ``hyperparams=None``, its class
        only where ``scheduler`` is of that class, and ``foreign_diffs`` (each field it holds that differs)."""
        with _malformed():
            if self.native:
                return _remap_groups(self.scheduler_state(), group_names(scheduler.optimizer))
            return self._from_foreign(scheduler)

    def _from_foreign(self, sched: Any) -> dict[str, Any]:
        state, base, step = self.scheduler_state(), list(self.base_lrs), self.step
        native: dict[str, Any] = {
            "format_version": FORMAT_VERSION, "hyperparams": None, "base_lrs": base, "last_epoch": step, "foreign_diffs": [],
        }  # fmt: skip
        family = _family(sched)
        if family not in self.cls.split("/"):
            what = self.cls or f"unrecognised (keys {V.short(sorted(map(str, state)), 200)})"
            native["class"] = f"{what} (torch/colossalai state)"
            return native
        native["class"] = type(sched).__name__
        native["foreign_diffs"] = _foreign_diffs(sched, state, step)
        if family == "MultiplicativeLR" and "_last_lr" in state:  # the running factor, recovered from the last lr
            last_lr = _reals("_last_lr", state["_last_lr"])
            if len(last_lr) == len(base):
                native["factor_step"] = min(step, sched.total_steps)
                native["factors"] = [lr / b if b else 1.0 for lr, b in zip(last_lr, base)]
        return native


def read_state(obj: Any) -> SavedState:
    """The :class:`SavedState` of a packed hook state, a ``{"scheduler": ..., "global_step": ...}`` dict (a hook's
    or a Booster JSON payload), or a bare scheduler state (ours, torch's or ColossalAI's); a
    :class:`SavedState` is returned as it is.

    Malformed input (bad JSON, deep nesting, wrong types, huge fields) raises :class:`CheckpointError` with a
    message under 1 KiB, whatever it holds.
    """
    if isinstance(obj, SavedState):
        return obj
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"expected a scheduler or hook state (a dict), got {type(obj).__name__}")
    if HOOK_KEY in obj:
        obj = _unpack_json(obj[HOOK_KEY])
    wrapped = isinstance(obj.get("scheduler"), Mapping)
    state = obj["scheduler"] if wrapped else obj
    fields = _fields(state)
    if wrapped:
        fields.update((f"hook.{k}", v) for k, v in obj.items() if k != "scheduler")
    check_plain(fields)
    step = obj.get("global_step") if wrapped else None
    clock = obj.get("clock") if wrapped else None
    resumed = _resumed(obj.get("resumed")) if wrapped else None
    try:
        step = None if step is None else V.step("global_step", step)
        clock = None if clock is None else Clock.from_state(clock).state_dict()
    except ValueError as e:
        raise CheckpointError(f"corrupt hook state: {e}") from None
    with _malformed():
        saved = _check_native(state) if is_native(state) else _check_foreign(state)
    if clock is not None and step is not None and saved.native and saved.step >= 0:
        unit = saved.fields.get("unit", "updates")
        if Clock.from_state(clock).position(unit, step) != saved.step:
            raise CheckpointError(f"corrupt hook state: its clock {dict(clock)} at global step {step} does not give the "
                                  f"scheduler's step {saved.step} (counting {V.short(unit)})")
    return dataclasses.replace(saved, global_step=step, clock=clock, resumed=resumed)


def _resumed(record: Any) -> Any:
    """A ``resumed`` record checked (its plain data already is, by :func:`check_plain`) and frozen, or None."""
    if record is None:
        return None
    ok = isinstance(record, Mapping) and set(record) <= {"step", "kept", "overridden", "how"} and (
        record.get("step") is None or (type(record["step"]) is int and 0 <= record["step"] <= V.MAX_STEP)) and (
        isinstance(record.get("kept", []), list) and all(isinstance(k, str) for k in record.get("kept", []))) and (
        isinstance(record.get("overridden", []), list)
        and all(isinstance(o, list) and len(o) == 3 and isinstance(o[0], str) for o in record.get("overridden", []))) and (
        isinstance(record.get("how", ""), str))
    if not ok:
        raise CheckpointError(f"corrupt hook state: 'resumed' must be a dict of step (int), kept (field names), "
                              f"overridden ([field, checkpoint, current] lists) and how (str), got {V.short(record, 200)}")
    return _freeze(record)


@contextmanager
def _malformed() -> Iterator[None]:
    """Any error but our own from reading untrusted data becomes a short :class:`CheckpointError`."""
    try:
        yield
    except CheckpointError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError) as e:
        raise CheckpointError(f"malformed scheduler state: {V.short(str(e), 600)}") from None


def unpack_state(obj: Any) -> tuple[dict[str, Any], int | None]:
    """``(scheduler state, global step or None)`` of :func:`read_state`'s value, as plain data."""
    saved = read_state(obj)
    return saved.scheduler_state(), saved.global_step


def _unpack_json(text: Any) -> Mapping[str, Any]:
    if not isinstance(text, (str, bytes, bytearray)):
        raise CheckpointError(f"corrupt hook state: {HOOK_KEY!r} must be a JSON str, got {type(text).__name__}")
    if len(text) > MAX_STATE_CHARS:
        raise CheckpointError(f"corrupt hook state: {len(text)} characters, more than the {MAX_STATE_CHARS} allowed")
    try:
        obj = json.loads(text)
    except (ValueError, TypeError, RecursionError) as e:
        raise CheckpointError(f"corrupt or truncated hook state ({type(e).__name__}: {V.short(str(e), 200)})") from None
    if not isinstance(obj, Mapping) or not isinstance(obj.get("scheduler"), Mapping):
        raise CheckpointError("corrupt hook state: no 'scheduler' entry")
    return obj


def _fields(state: Mapping[str, Any]) -> dict[str, Any]:
    """A state's fields, each checked on its own by :func:`check_plain`: a native state's every hyperparameter,
    and every other entry."""
    if not is_native(state):
        return {str(k): v for k, v in state.items()}
    hp = state.get("hyperparams")
    if not isinstance(hp, Mapping) or len(hp) > 64 or not all(isinstance(k, str) and len(k) <= 100 for k in hp):
        raise CheckpointError(f"corrupt scheduler state: 'hyperparams' must be a dict of names to values, got {V.short(hp)}")
    return {**{f"hyperparams.{k}": v for k, v in hp.items()}, **{str(k): v for k, v in state.items() if k != "hyperparams"}}


def is_native(state: Any) -> bool:
    """Whether ``state`` is a colossal_sched scheduler state (else torch's or ColossalAI's)."""
    return isinstance(state, Mapping) and "format_version" in state and "class" in state


def _check_native(state: Mapping[str, Any]) -> SavedState:
    version = state["format_version"]
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(f"scheduler state has format_version={V.short(version)}; this colossal_sched reads 1..{FORMAT_VERSION}")
    cls = state.get("class")
    if not isinstance(cls, str) or len(cls) > 200:
        raise CheckpointError(f"corrupt scheduler state: 'class' must be a str (a scheduler name), got {V.short(cls)}")
    out = dict(state)
    out["base_lrs"] = _reals("base_lrs", state.get("base_lrs"))
    last = state.get("last_epoch")
    if type(last) is not int or not -1 <= last <= V.MAX_STEP:
        raise CheckpointError(f"corrupt scheduler state: 'last_epoch' must be an int in [-1, 2**62], got {V.short(last)}")
    names = state.get("group_names")
    if names is not None and (not isinstance(names, (list, tuple)) or len(names) != len(out["base_lrs"])
                              or not all(n is None or (isinstance(n, str) and len(n) <= 1000) for n in names)):
        raise CheckpointError(f"corrupt scheduler state: 'group_names' must be a list of one str or None per param group, got {V.short(names)}")
    for key in ("last_lr", "factors", "max_lrs"):
        if key in state:
            out[key] = _reals(key, state[key])
    return SavedState(_freeze(out), True, cls, tuple(out["base_lrs"]), last)


def _check_foreign(state: Mapping[str, Any]) -> SavedState:
    if "last_epoch" not in state or "base_lrs" not in state:
        keys = V.short(sorted(map(str, state)), 300)
        raise CheckpointError(
            "not a scheduler state: expected colossal_sched's keys (format_version, class, hyperparams, base_lrs, "
            f"last_epoch) or a torch/colossalai scheduler's (last_epoch, base_lrs), got keys {keys}"
        )
    base = _reals("base_lrs", state["base_lrs"])
    return SavedState(_freeze(state), False, "/".join(foreign_class(state)), tuple(base), _foreign_step(state))


def _reals(name: str, value: Any) -> list[float]:
    """A list of finite floats >= 0 (one per param group), or a :class:`CheckpointError`."""
    if not isinstance(value, (list, tuple)) or len(value) > MAX_GROUPS:
        raise CheckpointError(f"{name} must be a list of at most {MAX_GROUPS} floats >= 0, got {V.short(value)}")
    try:
        return [V.real(f"{name}[{i}]", v, low=0.0) for i, v in enumerate(value)]
    except ValueError as e:
        raise CheckpointError(f"malformed scheduler state: {e}") from None


def _foreign_step(state: Mapping[str, Any]) -> int:
    """The steps taken, from a torch or ColossalAI state: ColossalAI's two-stage schedulers stop counting in
    the outer ``last_epoch`` once the second stage starts; the inner scheduler counts from there."""
    step = V.step("last_epoch", state["last_epoch"])
    after = state.get("after_scheduler_dict")
    if isinstance(after, Mapping) and state.get("finished"):
        step = V.step("last_epoch", step + V.step("after_scheduler_dict.last_epoch", after.get("last_epoch")))
    return step


_PER_GROUP = ("base_lrs", "last_lr", "factors", "max_lrs", "group_names")


def _remap_groups(state: dict[str, Any], names: list[str | None]) -> dict[str, Any]:
    """Reorder a state's per-group entries to the param groups ``names`` of this optimizer.

    Named groups are matched by name, so a pipeline stage holding a subset of the saved stage's
    groups resumes correctly; unnamed ones by position. A name the state lacks raises, naming both.
    """
    saved = state.get("group_names")
    if not saved or saved == names or not all(names) or not all(saved):
        return state
    missing = [n for n in names if n not in saved]
    if missing:
        raise CheckpointError(
            f"param groups {V.short(missing)} are not in the saved scheduler state (saved groups: {V.short(saved)}, these: {V.short(names)})"
        )
    index = [saved.index(n) for n in names]
    out = dict(state)
    for key in _PER_GROUP:
        if isinstance(state.get(key), list) and len(state[key]) == len(saved):
            out[key] = [state[key][i] for i in index]
    return out


# ----------------------------------------------------------- torch's and ColossalAI's states
_AFTER = "after_scheduler_dict."
_BOOKKEEPING = {"base_lrs", "last_epoch", "_step_count", "_is_initial", "_get_lr_called_within_step", "_last_lr",
                "verbose", "finished", "after_scheduler_type", "after_scheduler_dict", "lr_lambdas", "_initial_mode"}
# the schedule-defining keys of each torch / colossalai state, and (two-stage) the inner scheduler's type
_SIGNATURES: dict[tuple[frozenset, str | None], tuple[str, ...]] = {
    (frozenset({"T_max", "eta_min"}), None): ("CosineAnnealingLR",),
    (frozenset({"warmup_epochs"}), "CosineAnnealingLR"): ("CosineAnnealingWarmupLR",),
    (frozenset({"delay_epochs"}), "CosineAnnealingLR"): ("FlatAnnealingLR",),
    (frozenset({"warmup_epochs", "delay_epochs"}), "CosineAnnealingLR"): ("FlatAnnealingWarmupLR",),
    (frozenset({"total_steps", "warmup_steps"}), None): ("LinearWarmupLR",),
    (frozenset({"milestones", "gamma"}), None): ("MultiStepLR",),
    (frozenset({"warmup_epochs"}), "MultiStepLR"): ("MultiStepWarmupLR",),
    (frozenset({"total_steps", "_schedule_phases", "_anneal_func_type", "cycle_momentum", "use_beta1"}), None): ("OneCycleLR",),
    (frozenset({"total_steps", "end_lr", "power"}), None): ("PolynomialLR",),
    (frozenset({"total_iters", "power"}), None): ("PolynomialLR",),  # torch's (decays to 0)
    (frozenset({"warmup_epochs"}), "PolynomialLR"): ("PolynomialWarmupLR",),
    (frozenset(), None): ("LambdaLR", "MultiplicativeLR"),  # both save only lr_lambdas: told apart by _last_lr
    (frozenset({"step_size", "gamma"}), None): ("StepLR",),
    (frozenset({"gamma"}), None): ("ExponentialLR",),
}
_KNOWN = {name for names in _SIGNATURES.values() for name in names}


def foreign_class(state: Mapping[str, Any]) -> tuple[str, ...]:
    """The names of the schedulers (torch's or colossalai's) that write a state with these keys; () if none."""
    keys = frozenset(k for k in state if k not in _BOOKKEEPING)
    inner = state.get("after_scheduler_type")
    found = _SIGNATURES.get((keys, inner if isinstance(inner, str) else None), ())
    if found == ("LambdaLR", "MultiplicativeLR") and "lr_lambdas" not in state:
        return ()
    return found


def _family(sched: Any) -> str:
    """The colossal_sched class a scheduler is compared as (user subclasses as their parent)."""
    for cls in type(sched).__mro__:
        if cls.__module__.startswith("colossal_sched.") and cls.__name__ in _KNOWN:
            return cls.__name__
    return type(sched).__name__


def _foreign_fields(s: Any, state: Mapping[str, Any]) -> dict[str, Any]:
    """What a torch/colossalai state of the same schedule holds, by (dotted) key."""
    T = s.total_steps
    W, F = getattr(s, "warmup_steps", 0), getattr(s, "flat_steps", 0)
    table = {
        "CosineAnnealingLR": {"T_max": T, "eta_min": getattr(s, "eta_min", None)},
        "CosineAnnealingWarmupLR": {"warmup_epochs": W, _AFTER + "T_max": T - W, _AFTER + "eta_min": getattr(s, "eta_min", None)},
        "FlatAnnealingLR": {"delay_epochs": F, _AFTER + "T_max": T - F, _AFTER + "eta_min": getattr(s, "eta_min", None)},
        "FlatAnnealingWarmupLR": {"warmup_epochs": W, "delay_epochs": F, _AFTER + "T_max": T - W - F, _AFTER + "eta_min": getattr(s, "eta_min", None)},
        "LinearWarmupLR": {"total_steps": T, "warmup_steps": W},
        "MultiStepLR": {"milestones": getattr(s, "milestones", None), "gamma": getattr(s, "gamma", None)},
        "MultiStepWarmupLR": {"warmup_epochs": W, _AFTER + "milestones": [m - W for m in getattr(s, "milestones", [])], _AFTER + "gamma": getattr(s, "gamma", None)},
        "OneCycleLR": {"total_steps": T, "_anneal_func_type": getattr(s, "anneal_strategy", None), "cycle_momentum": getattr(s, "cycle_momentum", None),
                       "_schedule_phases.end_step": list(getattr(s, "end_steps", []))},
        "PolynomialLR": {"total_steps": T, "end_lr": getattr(s, "end_lr", None), "power": getattr(s, "power", None)}
        if "total_iters" not in state else {"total_iters": T, "power": getattr(s, "power", None), "end_lr (torch decays to 0)": getattr(s, "end_lr", None)},
        "PolynomialWarmupLR": {"warmup_epochs": W, _AFTER + "total_steps": T - W, _AFTER + "end_lr": getattr(s, "end_lr", None), _AFTER + "power": getattr(s, "power", None)},
        "StepLR": {"step_size": getattr(s, "step_size", None), "gamma": getattr(s, "gamma", None)},
        "ExponentialLR": {"gamma": getattr(s, "gamma", None)},
    }  # fmt: skip
    return table.get(_family(s), {})


def _foreign_diffs(sched: Any, state: Mapping[str, Any], step: int) -> list[tuple[str, Any, Any]]:
    """Every hyperparameter a foreign state of the same name carries, compared with ``sched``."""
    diffs = []
    for key, want in _foreign_fields(sched, state).items():
        saved = 0.0 if key.startswith("end_lr (") else _lookup(state, key)
        if saved != want:
            diffs.append((key, saved, want))
    base = [float(b) for b in state["base_lrs"]]
    family = _family(sched)
    if family == "OneCycleLR" and len(base) == len(sched.max_lrs):  # torch saves max_lr / div_factor as base_lrs
        mine = [m / sched.div_factor for m in sched.max_lrs]
        if not all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(base, mine)):
            diffs.append(("base_lrs (max_lr / div_factor)", base, mine))
    if family in ("LambdaLR", "MultiplicativeLR") and step <= sched.total_steps and isinstance(state.get("_last_lr"), list):
        # both save the same keys: the saved lr tells them (and another lr_lambda) apart
        if family == "LambdaLR":
            mine = [b * sched._value(g, step) for g, b in enumerate(base)]
        else:  # the product of the factors from step 1, multiplied in torch's order (once, at load)
            products = [1.0] * len(base)
            for i in range(1, step + 1):
                products = [p * sched._value(g, i) for g, p in enumerate(products)]
            mine = [b * p for b, p in zip(base, products)]
        last = state["_last_lr"]
        if len(last) == len(mine) and not all(math.isclose(float(a), b, rel_tol=1e-9, abs_tol=1e-300) for a, b in zip(last, mine)):
            what = "lr_lambda" if family == "LambdaLR" else "the product of lr_lambda"
            diffs.append((f"_last_lr at step {step} (base_lrs * {what})", list(last), mine))
    return diffs


def _lookup(sd: Mapping[str, Any], dotted: str) -> Any:
    if dotted == "_schedule_phases.end_step":  # torch's OneCycleLR: a list of phase dicts
        phases = sd.get("_schedule_phases")
        if not isinstance(phases, list) or len(phases) > 8 or not all(isinstance(p, Mapping) for p in phases):
            return V.short(phases)
        return [p.get("end_step", "<missing>") for p in phases]
    value: Any = sd
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return "<missing>"
        value = value[part]
    if isinstance(value, Mapping) and dotted.endswith("milestones"):  # torch keeps a Counter
        if not all(type(c) is int and 0 < c <= 1024 for c in value.values()):
            return V.short(value)
        value = sorted(m for m, count in value.items() for _ in range(count))
    return list(value) if isinstance(value, (list, tuple)) else value


__all__ = ["FORMAT_VERSION", "HOOK_KEY", "MAX_STATE_CHARS", "MAX_DEPTH", "MAX_VALUES", "MAX_STR", "SavedState",
           "read_state", "unpack_state", "check_plain", "is_native", "foreign_class", "group_names"]
