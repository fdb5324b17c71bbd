"""A schedule written as data: phases and boundaries from a plain dict / YAML spec."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from torch.optim import Optimizer

from . import _validate as V
from . import clock
from .errors import CheckpointError
from .phases import SPEC_TYPES, Phase, Product, Scaled, spec_keys
from .plan import PhasedLR
from .plateau import PlateauState, plateau_of
from .state import MAX_DEPTH, MAX_VALUES, check_plain

#: every phase type of a spec, by its ``type``: the phase classes of :mod:`~colossal_sched.phases` with a ``kind``;
#: their keys, defaults and checks are the classes' :func:`~colossal_sched.phases.key` fields (:func:`spec_keys`)
PHASE_TYPES: dict[str, type[Phase]] = SPEC_TYPES


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
    keys = spec_keys(PHASE_TYPES[kind])
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
                out[key] = check(key, value)
    except (ValueError, TypeError) as e:
        if str(e).startswith(where):
            raise
        raise type(e)(f"{where}.{e}") from None
    if kind == "restarts" and out["warmup_steps"] >= out["first_cycle_steps"]:
        raise ValueError(f"{where}.warmup_steps must be an int in [0, {out['first_cycle_steps'] - 1}] (< first_cycle_steps), "
                         f"got {out['warmup_steps']}")
    return out


def _kinds(spec: Mapping[str, Any]) -> list[str]:
    """The types of a normalized phase spec and of every factor nested in it."""
    return [spec["type"], *(k for f in spec.get("factors", []) for k in _kinds(f))]


def build_phase(spec: Mapping[str, Any], length: int) -> Phase:
    """The :class:`~colossal_sched.phases.Phase` of a normalized spec, over ``length`` steps."""
    kind = spec["type"]
    if kind == "product":
        phase: Phase = Product(length, tuple(build_phase(f, length) for f in spec["factors"]))
    else:
        keys = {k: tuple(spec[k]) if isinstance(spec[k], list) else spec[k] for k in spec_keys(PHASE_TYPES[kind])}
        phase = PHASE_TYPES[kind](length, **keys)
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
    (``factors``: phase specs, each from peak 1, multiplied: torch's ``ChainedScheduler`` as data); ``"plateau"``
    (torch's ``ReduceLROnPlateau`` keys; the last phase only, see :mod:`~colossal_sched.plateau`).
    ``end_lr``/``min_lr``/``eta_min`` are absolute lrs. The spec is plain JSON: saved, fingerprinted
    and compared at resume. A phase may say what its lengths count (``"unit": "samples"``, see
    :meth:`~colossal_sched.base.ClosedFormLR.counting`); every phase of one schedule counts the same unit.

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        phases (list[dict]): Phase specs, required.
        boundaries (list[int]): ``len(phases) - 1`` strictly increasing steps in ``[1, T]``.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    def __init__(self, optimizer: Optimizer, total_steps: int, phases: Optional[Sequence[Mapping[str, Any]]] = None,
                 boundaries: Optional[Sequence[int]] = None, last_epoch: int = -1) -> None:
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: int, phases: Any = None, boundaries: Any = None) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        if phases is None:
            raise ValueError("phases is required: a non-empty list of phase specs such as {'type': 'cosine'}")
        if isinstance(phases, (str, bytes, Mapping)) or not isinstance(phases, Sequence) or not phases:
            raise V.ArgumentTypeError(f"phases must be a non-empty list of phase specs (dicts), got {phases!r}")
        units = {i: clock.unit(f"phases[{i}].unit", p["unit"]) for i, p in enumerate(phases) if isinstance(p, Mapping) and "unit" in p}
        if len(set(units.values())) > 1:
            raise ValueError(f"phases mix clock units {[f'phases[{i}]: {u}' for i, u in units.items()]}: one schedule "
                             f"counts one unit, one of {list(clock.UNITS)}")
        self._declared_unit = next(iter(units.values()), None)
        if self._declared_unit is not None:
            self.unit = self._declared_unit
        phases = [{k: v for k, v in p.items() if k != "unit"} if isinstance(p, Mapping) else p for p in phases]
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
        self.plateau = self._listener()
        ends = bounds + [self.total_steps]
        for i, (p, s, e) in enumerate(zip(self.phases, [0] + bounds, ends)):
            try:  # a phase refused over its length (e.g. restarts with too many cycles) is named
                build_phase(p, e - s)
            except ValueError as err:
                raise ValueError(f"phases[{i}] ({p['type']}, steps {s}..{e}): {err}") from None

    def _listener(self) -> PlateauState | None:
        """The state of a last phase ``plateau`` (one that listens to metrics); a plateau elsewhere is refused."""
        nested = [i for i, p in enumerate(self.phases) if any("plateau" in _kinds(f) for f in p.get("factors", []))]
        early = [i for i, p in enumerate(self.phases[:-1]) if p["type"] == "plateau"]
        if nested or early:
            raise ValueError(f"phases[{(nested + early)[0]}]: a 'plateau' phase must be the last phase, not inside a "
                             "product (the metrics decide its level until the end)")
        if self.phases[-1]["type"] != "plateau":
            return None
        return PlateauState(plateau_of(build_phase(self.phases[-1], 0)), len(self.optimizer.param_groups))

    def counting(self, unit: str) -> "ComposedLR":
        declared = self.__dict__.get("_declared_unit")
        if declared is not None and clock.unit("unit", unit) != declared:
            raise ValueError(f"unit must be {declared!r}, what the phases declare, got {unit!r}")
        return super().counting(unit)

    def _plan(self) -> tuple[list[Phase], list[int]]:
        ends = self.boundaries + [self.total_steps]
        starts = [0] + self.boundaries
        phases = [build_phase(p, e - s) for p, s, e in zip(self.phases, starts, ends)]
        if self.plateau is not None:  # the last phase judges metrics with this scheduler's state
            phases[-1] = self.plateau.attached(phases[-1])
        return phases, list(self.boundaries)
