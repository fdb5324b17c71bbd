"""SkippedUpdates: whether the last update was skipped on an fp16 overflow, so the lr schedule's clock holds."""
from __future__ import annotations

from typing import Any

import torch

from colossal_sched import _validate as V

#: the attributes through which wrappers hold the optimizer they drive: ColossalAI's ``OptimizerWrapper``
#: (booster, ``MixedPrecisionOptimizer``, ``LowLevelZeroOptimizer``, ``GeminiOptimizer``, the HybridParallel ones,
#: the legacy ``NaiveAMPOptimizer`` and ``GradAccumOptimizer``) ``.optim``; its legacy ``FP16Optimizer`` and
#: Lightning's ``LightningOptimizer`` ``._optimizer``; Accelerate's ``AcceleratedOptimizer`` ``.optimizer``
INNER = ("optim", "_optimizer", "optimizer")


def _get(obj: Any, name: str) -> Any:
    try:
        return getattr(obj, name, None)
    except Exception:  # a property that raises is no inner optimizer
        return None


def _is_optimizer_like(obj: Any) -> bool:
    return isinstance(obj, torch.optim.Optimizer) or (
        callable(_get(obj, "step")) and _get(obj, "param_groups") is not None)


def wrapper_chain(optimizer: Any) -> list[Any]:
    """``optimizer`` and the optimizers it wraps, outermost first (through :data:`INNER`)."""
    chain = [optimizer]
    while len(chain) < 16:
        inner = next((v for v in map(lambda n: _get(chain[-1], n), INNER)
                      if v is not None and _is_optimizer_like(v) and not any(v is c for c in chain)), None)
        if inner is None:
            break
        chain.append(inner)
    return chain


def innermost_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The innermost ``torch.optim.Optimizer`` of ``optimizer`` (itself if it wraps none): the one whose
    ``step()`` applies the update, so the one that does not run when a mixed-precision wrapper skips it."""
    found = [o for o in wrapper_chain(optimizer) if isinstance(o, torch.optim.Optimizer)]
    if not found or not _is_optimizer_like(optimizer):  # an lr scheduler holds one too, but is none
        raise V.ArgumentTypeError(
            "optimizer must be a torch.optim.Optimizer or a wrapper holding one (as .optim, ._optimizer or "
            f".optimizer, e.g. ColossalAI's OptimizerWrapper), got {type(optimizer).__name__}")
    return found[-1]


class SkippedUpdates:
    r"""Tells, once per update, whether that update was skipped (an fp16 overflow: inf/NaN gradients), for
    ``LRSchedulerHook.step(global_step, skipped=detector())``: a skipped update must not advance the schedule.

    Call it once after each update, after ``scaler.update()`` (with gradient accumulation: once per update, after
    the optimizer's step, not per micro-batch). It returns True when no update took effect since the previous call
    (since construction, for the first). Two signals, neither adding a host-device sync where the first suffices:

    * **the step did not run**: a step post-hook on the innermost ``torch.optim.Optimizer`` counts its steps.
      ``GradScaler.step`` does not call ``optimizer.step()`` on inf/NaN gradients; ColossalAI's mixed-precision
      optimizers (``MixedPrecisionOptimizer`` and the ``HybridParallelAMPOptimizer`` built on it,
      ``LowLevelZeroOptimizer``, ``GeminiOptimizer``) return before their inner optimizer's step when
      ``mixed_precision.should_skip_step()``. This signal is exact and reads nothing from the device.
    * **the scale fell**: optimizers whose step runs on a skipped update and skips inside the kernel (torch's
      ``fused=True`` / ``capturable=True`` ones, ``_step_supports_amp_scaling``, which get ``found_inf`` from the
      GradScaler) count as stepped, so for them only a lower ``scaler.get_scale()`` than at the previous call tells.
      It is read only for such optimizers, and only when one step ran; on CUDA it is one host-device sync.
      ColossalAI's own ``DynamicGradScaler`` is no such scaler: its ``hysteresis`` (2 by default) keeps the scale
      after the first overflow, and its optimizers never need it (their inner step does not run when skipping).

    A call that covers no update (called twice without a step in between, or a ``LowLevelZeroOptimizer`` step
    under ``no_sync`` that only accumulates) returns True: nothing took effect, so the clock must not advance.
    A call that covers several steps returns False (an update took effect); with a fused optimizer the scale
    tells about one step only, so call it once per update. A scale lowered by hand (``scaler.update(new_scale)``,
    a loaded state) reads as a skipped fused step: :meth:`reset` after a load.

    Args:
        optimizer: A ``torch.optim.Optimizer``, or a wrapper holding one as ``.optim``, ``._optimizer`` or
            ``.optimizer`` (ColossalAI's booster and mixed-precision optimizers, legacy ``NaiveAMPOptimizer``).
        scaler: The ``torch.amp.GradScaler`` (anything with ``get_scale()``) that steps it, needed only for fused
            or capturable optimizers. Defaults to the wrapper's ``.scaler`` when it has one (ColossalAI's
            ``TorchAMPOptimizer`` from ``FP16TorchMixedPrecision``), else None (no scale signal).

    Attributes:
        steps (int): Steps of the innermost optimizer counted up to the last call.
        skipped (int): Calls that returned True.

    Example::

        detector, skipped = SkippedUpdates(optimizer, scaler), False
        for step, batch in enumerate(loader, start=first_step):
            hook.step(step, skipped=skipped)  # the previous update was skipped: its lr repeats
            scaler.scale(loss_fn(model(batch))).backward()
            scaler.step(optimizer)
            scaler.update()
            skipped = detector()
    """

    def __init__(self, optimizer: Any, scaler: Any = None) -> None:
        chain = wrapper_chain(optimizer)
        self.optimizer = innermost_optimizer(optimizer)
        if scaler is None:
            scaler = next((s for s in map(lambda o: _get(o, "scaler"), chain) if callable(_get(s, "get_scale"))), None)
        elif not callable(_get(scaler, "get_scale")):
            raise V.ArgumentTypeError(
                f"scaler must be a torch.amp.GradScaler (anything with get_scale()) or None, got {type(scaler).__name__}"
                " (ColossalAI's mixed-precision optimizers need none: their skipped steps do not run)")
        self.scaler = scaler
        if not hasattr(self.optimizer, "_optimizer_step_post_hooks"):
            raise V.ArgumentTypeError(
                f"optimizer's innermost optimizer ({type(self.optimizer).__name__}) has no step hooks: "
                "its __init__ must call torch.optim.Optimizer.__init__")
        self.steps = 0
        self.skipped = 0
        counter = self._counter = [0]  # the hook holds the list, not self
        self._handle = self.optimizer.register_step_post_hook(
            lambda opt, args, kwargs: counter.__setitem__(0, counter[0] + 1))
        self._seen = 0
        # fused/capturable optimizers run their step on a skipped update (the kernel skips it): only the scale tells
        self._by_scale = scaler is not None and bool(getattr(self.optimizer, "_step_supports_amp_scaling", False))
        self._scale = self._read_scale()

    def _read_scale(self) -> float | None:
        """``scaler.get_scale()`` where the scale tells (a host-device sync on CUDA), else None."""
        return float(self.scaler.get_scale()) if self._by_scale else None

    def __call__(self) -> bool:
        """Whether no update took effect since the previous call (see the class)."""
        ran = self._counter[0] - self._seen
        self._seen = self.steps = self._counter[0]
        skipped = ran == 0
        if ran and self._by_scale:
            previous, self._scale = self._scale, self._read_scale()
            skipped = ran == 1 and self._scale < previous
        self.skipped += skipped
        return skipped

    def reset(self) -> None:
        """Forget what happened so far: the next call tells only about the steps after this one (after a load)."""
        self._seen = self.steps = self._counter[0]
        self._scale = self._read_scale()

    def close(self) -> None:
        """Remove the step hook from the optimizer; the detector then reports every call as skipped."""
        self._handle.remove()

    def __enter__(self) -> SkippedUpdates:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        scaler = type(self.scaler).__name__ if self.scaler is not None else None
        return f"SkippedUpdates({type(self.optimizer).__name__}, scaler={scaler}, steps={self.steps}, skipped={self.skipped})"
