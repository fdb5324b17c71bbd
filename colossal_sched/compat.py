"""Reading scheduler states: this package's own, and those of torch's and colossalai's schedulers."""
from __future__ import annotations

from typing import Any, Mapping

from . import _validate as V
from .base import FORMAT_VERSION, ClosedFormLR, group_names

_AFTER = "after_scheduler_dict."


def _foreign_fields(s: Any) -> dict[str, Any]:
    """What a torch/colossalai state of the same schedule holds, by (dotted) key."""
    T = s.total_steps
    W, F = getattr(s, "warmup_steps", 0), getattr(s, "flat_steps", 0)
    table = {
        "CosineAnnealingLR": {"T_max": T, "eta_min": getattr(s, "eta_min", None)},
        "CosineAnnealingWarmupLR": {"warmup_epochs": W, _AFTER + "T_max": T - W, _AFTER + "eta_min": getattr(s, "eta_min", None)},
        "FlatAnnealingLR": {"delay_epochs": F, _AFTER + "T_max": T - F},
        "FlatAnnealingWarmupLR": {"warmup_epochs": W, "delay_epochs": F, _AFTER + "T_max": T - W - F, _AFTER + "eta_min": getattr(s, "eta_min", None)},
        "LinearWarmupLR": {"total_steps": T, "warmup_steps": W},
        "MultiStepLR": {"milestones": getattr(s, "milestones", None), "gamma": getattr(s, "gamma", None)},
        "MultiStepWarmupLR": {"warmup_epochs": W, _AFTER + "milestones": [m - W for m in getattr(s, "milestones", [])], _AFTER + "gamma": getattr(s, "gamma", None)},
        "OneCycleLR": {"total_steps": T, "_anneal_func_type": getattr(s, "anneal_strategy", None), "cycle_momentum": getattr(s, "cycle_momentum", None)},
        "PolynomialLR": {"total_steps": T, "end_lr": getattr(s, "end_lr", None), "power": getattr(s, "power", None)},
        "PolynomialWarmupLR": {"warmup_epochs": W, _AFTER + "total_steps": T - W, _AFTER + "end_lr": getattr(s, "end_lr", None), _AFTER + "power": getattr(s, "power", None)},
        "StepLR": {"step_size": getattr(s, "step_size", None), "gamma": getattr(s, "gamma", None)},
        "ExponentialLR": {"gamma": getattr(s, "gamma", None)},
    }  # fmt: skip
    for cls in type(s).__mro__:  # user subclasses compare as their colossal_sched parent
        if cls.__name__ in table:
            return table[cls.__name__]
    return {}


def _lookup(sd: Mapping[str, Any], dotted: str) -> Any:
    value: Any = sd
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return "<missing>"
        value = value[part]
    if isinstance(value, Mapping) and dotted.endswith("milestones"):  # torch keeps a Counter
        value = sorted(m for m, count in value.items() for _ in range(count))
    return list(value) if isinstance(value, (list, tuple)) else value


def is_native(state: Any) -> bool:
    return isinstance(state, Mapping) and "format_version" in state and "class" in state


def to_native_state(sched: ClosedFormLR, state: Any) -> dict[str, Any]:
    """Check a state and bring it to this package's form (foreign ones become ``hyperparams=None``)."""
    if not isinstance(state, Mapping):
        raise V.ArgumentTypeError(f"scheduler state must be a dict, got {type(state).__name__}")
    if is_native(state):
        return remap_groups(check_native(state), group_names(sched.optimizer))
    if "last_epoch" not in state or "base_lrs" not in state:
        raise ValueError(
            "not a scheduler state: expected colossal_sched's keys (format_version, class, hyperparams, base_lrs, "
            f"last_epoch) or a torch/colossalai scheduler's (last_epoch, base_lrs), got keys {sorted(state)}"
        )
    step = foreign_step(state)
    base = [float(b) for b in state["base_lrs"]]
    native: dict[str, Any] = {
        "format_version": FORMAT_VERSION, "class": type(sched).__name__, "hyperparams": None,
        "base_lrs": base, "last_epoch": step,
        "foreign_diffs": [
            (key, _lookup(state, key), want) for key, want in _foreign_fields(sched).items()
            if _lookup(state, key) != want
        ],
    }  # fmt: skip
    last_lr = state.get("_last_lr")
    if last_lr is not None and len(last_lr) == len(base):  # MultiplicativeLR's running factor
        native["factor_step"] = min(step, sched.total_steps)
        native["factors"] = [float(lr) / b if b else 1.0 for lr, b in zip(last_lr, base)]
    return native


def foreign_step(state: Mapping[str, Any]) -> int:
    """The number of steps taken, from a torch or colossalai scheduler state.

    ColossalAI's two-stage schedulers stop counting in the outer ``last_epoch`` once the second
    stage starts; the inner scheduler counts from there.
    """
    step = V.integer("last_epoch", state["last_epoch"], 0)
    after = state.get("after_scheduler_dict")
    if isinstance(after, Mapping) and state.get("finished"):
        step += V.integer("after_scheduler_dict.last_epoch", after["last_epoch"], 0)
    return step


_NATIVE_KEYS = {"class": str, "hyperparams": dict, "base_lrs": list, "last_epoch": int}


def check_native(state: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the shape of a colossal_sched state; a tampered or truncated one gives a clear error."""
    version = state["format_version"]
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"scheduler state has format_version={version!r}; this colossal_sched reads 1..{FORMAT_VERSION}")
    for key, kind in _NATIVE_KEYS.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise ValueError(f"corrupt scheduler state: {key!r} must be a {kind.__name__}, got {state.get(key)!r}")
    return dict(state)


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
        raise ValueError(f"param groups {missing} are not in the saved scheduler state (saved groups: {saved}, these: {names})")
    index = [saved.index(n) for n in names]
    out = dict(state)
    for key in _PER_GROUP:
        if isinstance(state.get(key), list) and len(state[key]) == len(saved):
            out[key] = [state[key][i] for i in index]
    return out
