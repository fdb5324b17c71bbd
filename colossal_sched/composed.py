"""A schedule written as data: phases and boundaries from a plain dict / YAML spec."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence

from torch.optim import Optimizer

from . import _validate as V
from .errors import CheckpointError
from .phases import (Constant, Cosine, Exponential, InverseSqrt, Linear, Milestones, OneMinusSqrt, Phase, PhasedLR,
                     Polynomial, Product, Restarts, Scaled, Steps, Warmup)
from .state import MAX_DEPTH, MAX_VALUES, check_plain


def _lr(name: str) -> Callable[[Any], float]:
    return lambda v: V.real(name, v, low=0.0)


def _gamma(v: Any) -> float:
    return V.real("gamma", v, low=0.0, low_open=True)


#: every phase type of a spec: its keys with (default, validator), and how to build it from them and the length
PHASE_TYPES: dict[str, tuple[dict[str, tuple[Any, Callable[[Any], Any]]], Callable[..., Phase]]] = {
    "warmup": ({}, lambda n: Warmup(n)),
    "constant": ({}, lambda n: Constant(n)),
    "linear": ({"end_lr": (0.0, _lr("end_lr"))}, lambda n, end_lr: Linear(n, end_lr)),
    "cosine": ({"end_lr": (0.0, _lr("end_lr"))}, lambda n, end_lr: Cosine(n, end_lr)),
    "polynomial": (
        {"end_lr": (0.0, _lr("end_lr")), "power": (1.0, lambda v: V.real("power", v, low=0.0, low_open=True))},
        lambda n, end_lr, power: Polynomial(n, end_lr, power),
    ),
    "1-sqrt": ({"end_lr": (0.0, _lr("end_lr"))}, lambda n, end_lr: OneMinusSqrt(n, end_lr)),
    "exponential": ({"gamma": (1.0, _gamma)}, lambda n, gamma: Exponential(n, gamma)),
    "steps": (
        {"step_size": (1, lambda v: V.integer("step_size", v, 1)), "gamma": (0.1, _gamma)},
        lambda n, step_size, gamma: Steps(n, step_size, gamma),
    ),
    "milestones": (
        {"milestones": (None, V.milestones), "gamma": (0.1, _gamma)},
        lambda n, milestones, gamma: Milestones(n, tuple(milestones), gamma),
    ),
    "inverse_sqrt": (
        {"timescale": (1.0, lambda v: V.real("timescale", v, low=0.0, low_open=True)), "min_lr": (0.0, _lr("min_lr"))},
        lambda n, timescale, min_lr: InverseSqrt(n, timescale, min_lr),
    ),
    "restarts": (
        {"first_cycle_steps": (None, lambda v: V.integer("first_cycle_steps", v, 1)),
         "cycle_mult": (1.0, lambda v: V.real("cycle_mult", v, low=1.0)),
         "cycle_decay": (1.0, lambda v: V.real("cycle_decay", v, low=0.0, low_open=True)),
         "warmup_steps": (0, lambda v: V.integer("warmup_steps", v, 0)), "eta_min": (0.0, _lr("eta_min"))},
        lambda n, **kw: Restarts(n, **kw),
    ),
    "product": ({"factors": (None, None)}, None),  # built by _phase: each factor is itself a spec
}  # fmt: skip


#: how deep ``product`` phases may nest (a product of products of ...); with :data:`MAX_SPEC_DEPTH` it keeps every
#: accepted spec within what a checkpoint may hold (``state.MAX_DEPTH``), so every accepted spec loads back
MAX_PRODUCT_DEPTH = 8


def _json_depth(value: Any) -> int:
    """Levels of lists / dicts in ``value`` (a scalar: 0), as a checkpoint's check counts them."""
    depth, level = 0, [value]
    while any(isinstance(x, (list, dict)) for x in level):
        depth += 1
        level = [v for x in level if isinstance(x, (list, dict)) for v in (x.values() if isinstance(x, dict) else x)]
    return depth


def normalize(spec: Any, where: str, depth: int = 0) -> dict[str, Any]:
    """A phase spec checked and completed with its defaults (errors name ``where``, e.g. ``phases[2]``)."""
    if not isinstance(spec, Mapping):
        raise V.ArgumentTypeError(f"{where} must be a dict with a 'type' key (one of {list(PHASE_TYPES)}), got {V.short(spec)}")
    kind = spec.get("type")
    if type(kind) is not str or kind not in PHASE_TYPES:
        raise ValueError(f"{where}.type must be one of {list(PHASE_TYPES)}, got {V.short(kind)}")
    if kind == "product" and depth >= MAX_PRODUCT_DEPTH:
        raise ValueError(f"{where} nests 'product' phases more than {MAX_PRODUCT_DEPTH} deep: phases may nest at most "
                         f"{MAX_PRODUCT_DEPTH} (and a checkpoint holds phases nested at most {MAX_DEPTH} levels deep as data)")
    keys, _ = PHASE_TYPES[kind]
    allowed = ["type", "scale", *keys]
    unknown = sorted((k for k in spec if k not in allowed), key=repr)
    if unknown:
        raise TypeError(f"{where} ({kind}) got unexpected key(s) {unknown}; allowed keys: {allowed}")
    out: dict[str, Any] = {"type": kind}
    try:
        out["scale"] = V.real("scale", spec.get("scale", 1.0), low=0.0)
        for key, (default, check) in keys.items():
            value = spec.get(key, default)
            if kind == "product":
                if not isinstance(value, (list, tuple)) or not value:
                    raise V.ArgumentTypeError(f"factors must be a non-empty list of phase specs, got {value!r}")
                out[key] = [normalize(f, f"{where}.factors[{j}]", depth + 1) for j, f in enumerate(value)]
            elif value is None:
                raise ValueError(f"{key} is required for a {kind!r} phase")
            else:
                out[key] = check(value)
    except (ValueError, TypeError) as e:
        if str(e).startswith(where):
            raise
        raise type(e)(f"{where}.{e}") from None
    if kind == "restarts" and out["warmup_steps"] >= out["first_cycle_steps"]:
        raise ValueError(f"{where}.warmup_steps must be an int in [0, {out['first_cycle_steps'] - 1}] (< first_cycle_steps), "
                         f"got {out['warmup_steps']}")
    return out


def build_phase(spec: Mapping[str, Any], length: int) -> Phase:
    """The :class:`~colossal_sched.phases.Phase` of a normalized spec, over ``length`` steps."""
    kind = spec["type"]
    if kind == "product":
        phase: Phase = Product(length, tuple(build_phase(f, length) for f in spec["factors"]))
    else:
        keys, make = PHASE_TYPES[kind]
        phase = make(length, **{k: spec[k] for k in keys})
    return phase if spec["scale"] == 1.0 else Scaled(length, phase, spec["scale"])


def _check_storable(phases: list[dict[str, Any]]) -> None:
    """Refuse a spec that its own checkpoint could not hold: the load-time check of a state
    (:func:`~colossal_sched.state.check_plain`: each hyperparameter nested at most ``MAX_DEPTH`` deep,
    at most ``MAX_VALUES`` values) is run at construction, so every accepted spec round-trips through ``state_dict``."""
    try:
        check_plain({"phases": phases})
    except CheckpointError:
        for i, phase in enumerate(phases):
            if _json_depth(phase) + 1 > MAX_DEPTH:
                raise ValueError(
                    f"phases[{i}] ({phase['type']}) is nested {_json_depth(phase) + 1} levels deep as data (the phases "
                    f"list, a phase dict, its 'factors' or 'milestones' list, ...); phases may be nested at most {MAX_DEPTH} "
                    "levels deep, what a checkpoint holds (so a 'product' cannot hold another 'product' nor a 'milestones' "
                    "phase)"
                ) from None
        raise ValueError(f"phases holds more than {MAX_VALUES} values in all (what a checkpoint holds)") from None


class ComposedLR(PhasedLR):
    r"""A schedule given as data: ``phases`` joined at ``boundaries`` (as optax's ``join_schedules``).

    Phase :math:`i` runs from :math:`b_{i-1}` to :math:`b_i` (:math:`b_{-1} = 0`, the last to :math:`T`)
    at local count :math:`u = t - b_{i-1}`, from the peak ``scale`` :math:`\times` the group's base lr:

    ``{"type": "warmup"}`` :math:`\frac{u + 1}{L}\mathrm{peak}`; ``"constant"``; ``"linear"``, ``"cosine"``,
    ``"1-sqrt"`` (``end_lr``), ``"polynomial"`` (``end_lr``, ``power``) from the peak to ``end_lr`` over the phase;
    ``"exponential"`` (``gamma``); ``"steps"`` (``step_size``, ``gamma``); ``"milestones"`` (``milestones`` counted
    from the phase start, ``gamma``); ``"inverse_sqrt"`` (``timescale``, ``min_lr``); ``"restarts"``
    (``first_cycle_steps``, ``cycle_mult``, ``cycle_decay``, ``warmup_steps``, ``eta_min``); ``"product"``
    (``factors``: phase specs, each from peak 1, multiplied: torch's ``ChainedScheduler`` as data).
    ``end_lr``/``min_lr``/``eta_min`` are absolute lrs. The spec is plain JSON: saved, fingerprinted
    and compared at resume.

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        phases (list[dict]): Phase specs, required.
        boundaries (list[int]): ``len(phases) - 1`` strictly increasing steps in ``[1, T]``.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int,
        phases: Optional[Sequence[Mapping[str, Any]]] = None,
        boundaries: Optional[Sequence[int]] = None,
        last_epoch: int = -1,
    ) -> None:
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: int, phases: Any = None, boundaries: Any = None) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        if phases is None:
            raise ValueError("phases is required: a non-empty list of phase specs such as {'type': 'cosine'}")
        if isinstance(phases, (str, bytes, Mapping)) or not isinstance(phases, Sequence) or not phases:
            raise V.ArgumentTypeError(f"phases must be a non-empty list of phase specs (dicts), got {phases!r}")
        self.phases = [normalize(p, f"phases[{i}]") for i, p in enumerate(phases)]
        _check_storable(self.phases)
        bounds = [] if boundaries is None else boundaries
        if isinstance(bounds, (str, bytes)) or not isinstance(bounds, Sequence):
            raise V.ArgumentTypeError(f"boundaries must be a list of ints, got {boundaries!r}")
        if len(bounds) != len(self.phases) - 1:
            raise ValueError(
                f"boundaries must hold len(phases) - 1 = {len(self.phases) - 1} steps (where each phase after the first "
                f"starts), got {len(bounds)}: {list(bounds)}"
            )
        bounds = [V.integer("boundaries", b, 1) for b in bounds]
        if any(b <= a for a, b in zip(bounds, bounds[1:])) or any(b > self.total_steps for b in bounds):
            raise ValueError(f"boundaries must be strictly increasing ints in [1, total_steps={self.total_steps}], got {bounds}")
        self.boundaries = bounds
        ends = bounds + [self.total_steps]
        for i, (p, s, e) in enumerate(zip(self.phases, [0] + bounds, ends)):
            try:  # a phase refused over its length (e.g. restarts with too many cycles) is named
                build_phase(p, e - s)
            except ValueError as err:
                raise ValueError(f"phases[{i}] ({p['type']}, steps {s}..{e}): {err}") from None

    def _plan(self) -> tuple[list[Phase], list[int]]:
        ends = self.boundaries + [self.total_steps]
        starts = [0] + self.boundaries
        return [build_phase(p, e - s) for p, s, e in zip(self.phases, starts, ends)], list(self.boundaries)
