"""Reading scheduler states: this package's own, and those of torch's and colossalai's schedulers."""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Mapping

from . import _validate as V
from .base import FORMAT_VERSION, ClosedFormLR, group_names
from .errors import CheckpointError

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
_MAX_LIST = 1 << 20
_KNOWN = {name for names in _SIGNATURES.values() for name in names}


def foreign_class(state: Mapping[str, Any]) -> tuple[str, ...]:
    """The names of the schedulers (torch's or colossalai's) that write a state with these keys; () if none."""
    keys = frozenset(k for k in state if k not in _BOOKKEEPING)
    inner = state.get("after_scheduler_type")
    found = _SIGNATURES.get((keys, inner if isinstance(inner, str) else None), ())
    if found == ("LambdaLR", "MultiplicativeLR") and "lr_lambdas" not in state:
        return ()
    return found


def _family(sched: ClosedFormLR) -> str:
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


def _foreign_diffs(sched: ClosedFormLR, state: Mapping[str, Any], step: int) -> list[tuple[str, Any, Any]]:
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
        if len(value) > _MAX_LIST or not all(type(c) is int and 0 < c <= 1024 for c in value.values()):
            return V.short(value)
        value = sorted(m for m, count in value.items() for _ in range(count))
    return list(value) if isinstance(value, (list, tuple)) else value


def is_native(state: Any) -> bool:
    return isinstance(state, Mapping) and "format_version" in state and "class" in state


def to_native_state(sched: ClosedFormLR, state: Any) -> dict[str, Any]:
    """Check a state and bring it to this package's form (foreign ones become ``hyperparams=None``).

    A foreign (torch / colossalai) state keeps its class only if it is that of ``sched``; a
    malformed state of either kind raises :class:`CheckpointError` with a short message.
    """
    if not isinstance(state, Mapping):
        raise CheckpointError(f"scheduler state must be a dict, got {type(state).__name__}")
    try:
        if is_native(state):
            return remap_groups(check_native(state), group_names(sched.optimizer))
        return _from_foreign(sched, state)
    except CheckpointError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError) as e:
        raise CheckpointError(f"malformed scheduler state: {V.short(str(e), 600)}") from None


def _from_foreign(sched: ClosedFormLR, state: Mapping[str, Any]) -> dict[str, Any]:
    if "last_epoch" not in state or "base_lrs" not in state:
        keys = V.short(sorted(map(str, state)), 300)
        raise CheckpointError(
            "not a scheduler state: expected colossal_sched's keys (format_version, class, hyperparams, base_lrs, "
            f"last_epoch) or a torch/colossalai scheduler's (last_epoch, base_lrs), got keys {keys}"
        )
    base = _reals("base_lrs", state["base_lrs"])
    step = foreign_step(state)
    names, family = foreign_class(state), _family(sched)
    native: dict[str, Any] = {
        "format_version": FORMAT_VERSION, "hyperparams": None, "base_lrs": base, "last_epoch": step, "foreign_diffs": [],
    }  # fmt: skip
    if family not in names:
        what = "/".join(names) if names else f"unrecognised (keys {V.short(sorted(map(str, state)), 200)})"
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


def _reals(name: str, value: Any) -> list[float]:
    """A list of finite floats >= 0 (one per param group), or a :class:`CheckpointError`."""
    if not isinstance(value, (list, tuple)) or len(value) > _MAX_GROUPS:
        raise CheckpointError(f"{name} must be a list of at most {_MAX_GROUPS} floats >= 0, got {V.short(value)}")
    try:
        return [V.real(f"{name}[{i}]", v, low=0.0) for i, v in enumerate(value)]
    except ValueError as e:
        raise CheckpointError(f"malformed scheduler state: {e}") from None


def foreign_step(state: Mapping[str, Any]) -> int:
    """The number of steps taken, from a torch or colossalai scheduler state.

    ColossalAI's two-stage schedulers stop counting in the outer ``last_epoch`` once the second
    stage starts; the inner scheduler counts from there.
    """
    step = V.step("last_epoch", state["last_epoch"])
    after = state.get("after_scheduler_dict")
    if isinstance(after, Mapping) and state.get("finished"):
        step = V.step("last_epoch", step + V.step("after_scheduler_dict.last_epoch", after.get("last_epoch")))
    return step


_MAX_GROUPS = 1 << 16
_SCALARS = (int, float, str, bool, type(None))


_MAX_DEPTH = 10


def _plain_value(value: Any, budget: list[int], depth: int = 0) -> bool:
    """Whether ``value`` is a JSON scalar (str up to 1000 chars), or lists / str-keyed dicts of them nested
    at most :data:`_MAX_DEPTH` deep, with at most ``budget[0]`` items in all."""
    budget[0] -= 1
    if budget[0] < 0:
        return False
    if type(value) in _SCALARS:
        return type(value) is not str or len(value) <= 1000
    if depth >= _MAX_DEPTH:
        return False
    if type(value) is list:
        return all(_plain_value(v, budget, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and len(k) <= 100 and _plain_value(v, budget, depth + 1) for k, v in value.items())
    return False


def check_native(state: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the shape of a colossal_sched state; a tampered, truncated or hostile one (wrong types,
    deep nesting, huge fields) gives a :class:`CheckpointError` with a short message."""
    version = state["format_version"]
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(f"scheduler state has format_version={V.short(version)}; this colossal_sched reads 1..{FORMAT_VERSION}")
    cls, hp = state.get("class"), state.get("hyperparams")
    if not isinstance(cls, str) or len(cls) > 200:
        raise CheckpointError(f"corrupt scheduler state: 'class' must be a str (a scheduler name), got {V.short(cls)}")
    if not isinstance(hp, dict) or len(hp) > 64 or not all(isinstance(k, str) and len(k) <= 100 for k in hp):
        raise CheckpointError(f"corrupt scheduler state: 'hyperparams' must be a dict of names to values, got {V.short(hp)}")
    for key, value in hp.items():
        if not _plain_value(value, [_MAX_LIST]):
            raise CheckpointError(
                f"corrupt scheduler state: hyperparams[{key!r}] must be a number, str, bool, None or a list of them "
                f"(or, for a spec such as ComposedLR's phases, dicts of them nested at most {_MAX_DEPTH} deep), got {V.short(value)}"
            )
    out = dict(state)
    out["base_lrs"] = _reals("base_lrs", state.get("base_lrs"))
    last = state.get("last_epoch")
    if type(last) is not int:
        raise CheckpointError(f"corrupt scheduler state: 'last_epoch' must be an int in [-1, 2**62], got {V.short(last)}")
    try:
        V.step("last_epoch", last, -1)
    except ValueError as e:
        raise CheckpointError(f"corrupt scheduler state: {e}") from None
    names = state.get("group_names")
    if names is not None and (not isinstance(names, list) or len(names) != len(out["base_lrs"])
                              or not all(n is None or (isinstance(n, str) and len(n) <= 1000) for n in names)):
        raise CheckpointError(f"corrupt scheduler state: 'group_names' must be a list of one str or None per param group, got {V.short(names)}")
    for key in ("last_lr", "factors", "max_lrs"):
        if key in state:
            out[key] = _reals(key, state[key])
    return out


_PER_GROUP = ("base_lrs", "last_lr", "factors", "max_lrs", "group_names")


def remap_groups(state: dict[str, Any], names: list[str | None]) -> dict[str, Any]:
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
