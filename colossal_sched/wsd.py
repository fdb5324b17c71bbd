"""Warmup-stable-decay (HF ``get_wsd_schedule``, Megatron ``WSD``, torchtitan's ``decay_ratio``)."""
from __future__ import annotations

from typing import Any, Optional

from torch.optim import Optimizer

from . import _validate as V
from .phases import Anchored, Constant, Cosine, Linear, OneMinusSqrt, Phase
from .plan import Joined, PhasedLR, warmup_then

DECAY_STYLES = {"linear": Linear, "cosine": Cosine, "1-sqrt": OneMinusSqrt}


class WarmupStableDecayLR(PhasedLR):
    r"""Linear warmup over :math:`W` steps, the base lr for :math:`S = T - W - D` steps, then a decay to
    ``min_lr`` over :math:`D` steps (``decay_steps``, or :math:`\lfloor \mathrm{decay\_ratio}\,(T - W) \rfloor`).
    With :math:`p = \min(t - W - S, D) / D`:

    .. math::
        \mathrm{lr}(t) = \begin{cases} \frac{t + 1}{W}\,\mathrm{base} & t < W \\ \mathrm{base} & t < W + S \\
        \mathrm{min\_lr} + (\mathrm{base} - \mathrm{min\_lr})\,g(p) & \text{otherwise} \end{cases}

    :math:`g(p) = 1 - p` (``"linear"``), :math:`\frac{1 + \cos \pi p}{2}` (``"cosine"``), :math:`1 - \sqrt{p}` (``"1-sqrt"``).
    A re-plan in the stable phase lets it absorb the change: the decay keeps its length (or its ratio).

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        warmup_steps (int, optional): Number of warmup steps, in ``[0, T]``, defaults to 0.
        decay_steps (int, optional): Decay length :math:`D` in ``[0, T - W]``; exactly one of it and ``decay_ratio``.
        decay_ratio (float, optional): :math:`D / (T - W)`, in ``[0, 1]``; exactly one of it and ``decay_steps``.
        decay_style (str, optional): ``"linear"``, ``"cosine"`` or ``"1-sqrt"``, defaults to ``"linear"``.
        min_lr (float, optional): The lr at the end of the decay, >= 0, defaults to 0.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    def __init__(self, optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, decay_steps: Optional[int] = None,
                 decay_ratio: Optional[float] = None, decay_style: str = "linear", min_lr: float = 0.0,
                 last_epoch: int = -1) -> None:
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: int, warmup_steps: int = 0, decay_steps: Optional[int] = None,
                   decay_ratio: Optional[float] = None, decay_style: str = "linear", min_lr: float = 0.0) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.warmup_steps = V.warmup(warmup_steps, self.total_steps, decay_follows=False)
        if (decay_steps is None) == (decay_ratio is None):
            raise ValueError(
                "exactly one of decay_steps (an int in [0, total_steps - warmup_steps]) and decay_ratio (a float in "
                f"[0, 1]) must be given, got decay_steps={decay_steps!r}, decay_ratio={decay_ratio!r}"
            )
        room = self.total_steps - self.warmup_steps
        if decay_steps is not None:
            self.decay_steps, self.decay_ratio = V.integer("decay_steps", decay_steps, 0), None
            if self.decay_steps > room:
                raise ValueError(
                    f"decay_steps must be an int in [0, {room}] (total_steps - warmup_steps = {self.total_steps} - "
                    f"{self.warmup_steps}, so the stable phase is >= 0 steps), got {self.decay_steps}"
                )
        else:
            self.decay_steps, self.decay_ratio = None, V.real("decay_ratio", decay_ratio, low=0.0, high=1.0)
        self.decay_style = V.choice("decay_style", decay_style, tuple(DECAY_STYLES))
        self.min_lr = V.real("min_lr", min_lr, low=0.0)

    def _decay_length(self, total_steps: int) -> int:
        if self.decay_steps is not None:
            return self.decay_steps
        room = max(total_steps - self.warmup_steps, 0)
        # in floats ratio * room may round past room (room > 2**53): clamped, so the stable phase is never < 0
        return min(max(int(self.decay_ratio * room), 0), room)

    def _plan(self) -> tuple[list[Phase], list[int]]:
        w, d = self.warmup_steps, self._decay_length(self.total_steps)
        decay = DECAY_STYLES[self.decay_style](d, end_lr=self.min_lr)
        return warmup_then(w, Constant(self.total_steps - w - d), decay)

    def _tail(self, plan: Joined, at_step: int, total_steps: int) -> Any:
        phase = plan.phases[plan.index(at_step)]
        while isinstance(phase, Anchored):
            phase = phase.inner
        if not isinstance(phase, Constant):
            return None  # in the decay: re-fitted from the current lr over the new remaining steps

        def stable_absorbs(old: list[int], remaining: int) -> list[int]:
            decay = min(self._decay_length(total_steps), remaining)
            return [remaining - decay, decay] if len(old) == 2 else [remaining]

        return stable_absorbs
