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
    (since construction, for the first). Step hooks on the innermost ``torch.optim.Optimizer`` gather:

    * **whether its step ran**, counted: ``GradScaler.step`` does not call ``optimizer.step()`` on inf/NaN gradients;
      ColossalAI's mixed-precision optimizers (``MixedPrecisionOptimizer`` and ``HybridParallelAMPOptimizer``, which
      inherits its step; ``LowLevelZeroOptimizer``, ``GeminiOptimizer``; the legacy ``FP16Optimizer``) return before
      their inner optimizer's step when ``mixed_precision.should_skip_step()``. Exact; reads nothing from the device.
    * **the GradScaler's** ``found_inf`` **for a step that runs anyway**: torch's ``fused=True`` / ``capturable=True``
      optimizers (``_step_supports_amp_scaling``) step on a skipped update and skip inside the kernel, with the
      ``found_inf`` tensor GradScaler sets on them for that step. The hook adds it up on its device (no sync); the
      call reads the sum: one host-device sync on CUDA, only for such optimizers, only when one of them stepped.
    * **the scale fell**, the fallback for such a step without ``found_inf`` (a scaler that passes itself as
      ``grad_scaler=``): ``scaler.get_scale()`` lower than at the previous call (a host-device sync on CUDA).
      ColossalAI's ``DynamicGradScaler`` is no such scaler: its ``hysteresis`` (2 by default) keeps the scale
      after the first overflow, and its optimizers need none (their inner step does not run when skipping).

    A call that covers no update (called twice without a step in between, or a ``LowLevelZeroOptimizer`` step under
    ``no_sync`` that only accumulates) returns True: nothing took effect, so the clock must not advance. A call that
    covers several steps returns False unless all were skipped (the fallback tells about one step only, so call
    it once per update). A scale lowered by hand (``scaler.update(new_scale)``, a loaded state) reads as a skipped
    step to the fallback: :meth:`reset` after a load. Steps replayed from a captured CUDA graph run no hooks.
    Ranks decide alike where the overflow is agreed: gradients all-reduced before the check (DDP), or the check
    all-reduced (ColossalAI's ``check_overflow``, FSDP's ``ShardedGradScaler``).

    Args:
        optimizer: A ``torch.optim.Optimizer``, or a wrapper holding one as ``.optim``, ``._optimizer`` or
            ``.optimizer`` (ColossalAI's booster and mixed-precision optimizers, legacy ``NaiveAMPOptimizer``).
        scaler: The ``torch.amp.GradScaler`` (anything with ``get_scale()``) that steps it, for the fallback.
            Defaults to the wrapper's ``.scaler`` when it has one (ColossalAI's ``TorchAMPOptimizer`` from
            ``FP16TorchMixedPrecision``), else None.

    Attributes:
        steps (int): Steps of the innermost optimizer counted up to the last call (skipped fused steps included).
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
        # the hooks' record, not self (the optimizer then keeps no detector alive): [steps, steps told by found_inf,
        # a device tensor counting those whose found_inf was set, steps in progress]
        record = self._record = [0, 0, None, 0]
        self._handles = (self.optimizer.register_step_pre_hook(lambda opt, args, kwargs: _enter(record)),
                         self.optimizer.register_step_post_hook(lambda opt, args, kwargs: _count(record, opt)))
        self._seen = (0, 0)
        # fused/capturable optimizers run their step on a skipped update (the kernel skips it)
        self._fused = bool(getattr(self.optimizer, "_step_supports_amp_scaling", False))
        self._scale = self._read_scale()

    def _read_scale(self) -> float | None:
        """``scaler.get_scale()`` where the fallback may need it (a host-device sync on CUDA), else None."""
        return float(self.scaler.get_scale()) if self._fused and self.scaler is not None else None

    def __call__(self) -> bool:
        """Whether no update took effect since the previous call (see the class)."""
        record = self._record
        record[3] = 0  # no step is in progress now (one that raised never ran its post-hook)
        ran, told = record[0] - self._seen[0], record[1] - self._seen[1]
        self._seen, self.steps = (record[0], record[1]), record[0]
        if not ran:
            skipped = True
        elif told:  # fused steps that saw found_inf: those with inf/NaN did nothing
            count, record[2] = record[2], None
            skipped = int(count.item()) == ran  # the one device read
            self._scale = None  # the fallback's baseline is stale now
        elif self._fused and self.scaler is not None:
            previous, self._scale = self._scale, self._read_scale()
            skipped = ran == 1 and previous is not None and self._scale < previous
        else:
            skipped = False
        self.skipped += skipped
        return skipped

    def reset(self) -> None:
        """Forget what happened so far: the next call tells only about the steps after this one (after a load)."""
        record = self._record
        self._seen, self.steps, record[2], record[3] = (record[0], record[1]), record[0], None, 0
        self._scale = self._read_scale()

    def close(self) -> None:
        """Remove the step hooks from the optimizer; the detector then reports every call as skipped."""
        for handle in self._handles:
            handle.remove()

    def __enter__(self) -> SkippedUpdates:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        scaler = type(self.scaler).__name__ if self.scaler is not None else None
        return f"SkippedUpdates({type(self.optimizer).__name__}, scaler={scaler}, steps={self.steps}, skipped={self.skipped})"


def _enter(record: list) -> None:
    """The step pre-hook: a step begins (a subclass's ``step`` calling ``super().step()`` runs the hooks twice)."""
    record[3] += 1


def _count(record: list, optimizer: torch.optim.Optimizer) -> None:
    """The step post-hook: count the outermost step, and add up GradScaler's ``found_inf`` for it on its device."""
    record[3] = max(record[3] - 1, 0)
    if record[3]:
        return
    record[0] += 1
    found_inf = optimizer.__dict__.get("found_inf")  # set by GradScaler.step for this step only
    if isinstance(found_inf, torch.Tensor):
        record[1] += 1
        hit = found_inf.detach().ne(0).any().long()  # no sync: read at the call
        record[2] = hit if record[2] is None else record[2].add_(hit)
