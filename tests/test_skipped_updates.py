"""SkippedUpdates: an update skipped on an fp16 overflow is told exactly at that update, and nowhere else.

A tiny model trains for N updates; an inf gradient injected at update K makes the scaler (torch's GradScaler, or
ColossalAI's mixed-precision optimizer) skip it. Single process, CPU.
"""
import math

import pytest
import torch
import torch.distributed as dist
from torch.amp import GradScaler

from hooks import SkippedUpdates
from hooks.skipped_updates import innermost_optimizer

N, K = 6, 3  # updates, the one skipped


def model_and_data(dtype=torch.float32):
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2).to(dtype), torch.randn(4, 3).to(dtype)


def train(model, x, optimizer, scaler, detector, micro_batches=1, inject=(K, 0), updates=N):
    """``updates`` updates of ``micro_batches`` micro-batches each; an inf gradient in micro-batch ``inject[1]`` of
    update ``inject[0]``. Returns the detector's answers and whether each update changed the parameters."""
    told, changed = [], []
    for update in range(updates):
        before = [p.detach().clone() for p in model.parameters()]
        optimizer.zero_grad()
        for micro in range(micro_batches):
            scaler.scale(model(x).square().mean()).backward()
            if (update, micro) == inject:
                model.weight.grad[0, 0] = math.inf
        scaler.step(optimizer)
        scaler.update()
        told.append(detector())
        changed.append(any(not torch.equal(a, b) for a, b in zip(before, model.parameters())))
    return told, changed


EXPECTED = [u == K for u in range(N)]


@pytest.mark.parametrize("kind, fused", [("SGD", False), ("Adam", False), ("SGD", True), ("Adam", True)])
def test_grad_scaler_skip_is_told_exactly_at_the_skipped_update(kind, fused):
    model, x = model_and_data()
    optimizer = getattr(torch.optim, kind)(model.parameters(), lr=0.1, fused=fused)
    scaler = GradScaler("cpu", init_scale=2.0**10)
    detector = SkippedUpdates(optimizer, scaler)
    told, changed = train(model, x, optimizer, scaler, detector)
    assert told == EXPECTED
    assert changed == [not t for t in EXPECTED]  # the skipped update left the parameters as they were
    assert scaler.get_scale() == 2.0**9  # backed off once
    # a fused step runs even when skipped (the kernel skips it): there only the scale told
    assert (detector.steps, detector.skipped) == ((N, 1) if fused else (N - 1, 1))


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
def test_fused_optimizer_is_told_by_found_inf_without_the_scaler(kind):
    """A fused step runs on a skipped update; GradScaler's found_inf for that step tells, no scale needed."""
    model, x = model_and_data()
    optimizer = getattr(torch.optim, kind)(model.parameters(), lr=0.1, fused=True)
    scaler = GradScaler("cpu", init_scale=2.0**10)
    detector = SkippedUpdates(optimizer)
    told, changed = train(model, x, optimizer, scaler, detector)
    assert told == EXPECTED and changed == [not t for t in EXPECTED]
    assert (detector.steps, detector.skipped) == (N, 1)


def test_a_scale_that_fell_tells_for_a_step_without_found_inf():
    """The fallback: an optimizer that skips inside its step by itself (no found_inf), with a scaler that backs off;
    its step calls ``super().step()``, which runs torch's step hooks twice: counted once."""
    class KernelSkips(torch.optim.SGD):
        _step_supports_amp_scaling = True

        def step(self, closure=None):
            if all(torch.isfinite(p.grad).all() for g in self.param_groups for p in g["params"]):
                super().step(closure)

    class HalvingScaler:
        scale = 8.0

        def get_scale(self):
            return self.scale

    model, x = model_and_data()
    optimizer, scaler = KernelSkips(model.parameters(), lr=0.1), HalvingScaler()
    detector, told, changed = SkippedUpdates(optimizer, scaler), [], []
    for update in range(N):
        before = [p.detach().clone() for p in model.parameters()]
        optimizer.zero_grad()
        model(x).square().mean().backward()
        if update == K:
            model.weight.grad[0, 0] = math.inf
            scaler.scale /= 2
        optimizer.step()
        told.append(detector())
        changed.append(any(not torch.equal(a, b) for a, b in zip(before, model.parameters())))
    assert told == EXPECTED and changed == [not t for t in EXPECTED]
    assert (detector.steps, detector.skipped) == (N, 1)
    assert SkippedUpdates(optimizer)() is True  # without the scaler nothing tells, and no step ran since


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("micro", [0, 2])
def test_gradient_accumulation_is_told_once_per_update(fused, micro):
    model, x = model_and_data()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, fused=fused)
    scaler = GradScaler("cpu", init_scale=2.0**10)
    detector = SkippedUpdates(optimizer, scaler)
    told, changed = train(model, x, optimizer, scaler, detector, micro_batches=3, inject=(K, micro))
    assert told == EXPECTED and changed == [not t for t in EXPECTED]


def test_a_call_without_an_update_is_skipped_and_several_updates_are_not():
    model, x = model_and_data()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = GradScaler("cpu")
    detector = SkippedUpdates(optimizer, scaler)
    assert detector() is True  # nothing ran since construction
    train(model, x, optimizer, scaler, lambda: None, inject=None, updates=2)
    assert detector() is False and detector.steps == 2
    assert detector() is True  # called again, no update in between
    detector.close()
    train(model, x, optimizer, scaler, lambda: None, inject=None, updates=1)
    assert detector() is True and detector.steps == 2  # closed: no longer counts


def test_reset_forgets_a_scale_lowered_by_a_load():
    model, x = model_and_data()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, fused=True)
    scaler = GradScaler("cpu", init_scale=2.0**10)
    detector = SkippedUpdates(optimizer, scaler)
    scaler.load_state_dict({**scaler.state_dict(), "scale": 2.0**4})
    detector.reset()
    told, _ = train(model, x, optimizer, scaler, detector)
    assert told == EXPECTED


def test_a_wrappers_scaler_is_taken_and_its_inner_optimizer_hooked():
    class Wrapper:  # e.g. ColossalAI's TorchAMPOptimizer: .optim and .scaler
        def __init__(self, optim, scaler):
            self.optim, self.scaler = optim, scaler
            self.param_groups = optim.param_groups

        def step(self):
            self.scaler.step(self.optim)

    model, x = model_and_data()
    inner = torch.optim.Adam(model.parameters(), lr=0.1, fused=True)
    scaler = GradScaler("cpu", init_scale=2.0**10)
    detector = SkippedUpdates(Wrapper(Wrapper(inner, scaler), None))
    assert detector.optimizer is inner and detector.scaler is scaler
    told, _ = train(model, x, inner, scaler, detector)
    assert told == EXPECTED


@pytest.mark.parametrize("optimizer, message", [
    (3, "optimizer must be a torch.optim.Optimizer or a wrapper holding one"),
    (None, "optimizer must be a torch.optim.Optimizer or a wrapper holding one"),
    (torch.nn.Linear(1, 1), "got Linear"),
    (torch.optim.lr_scheduler.StepLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)]), 1), "got StepLR"),
])
def test_refuses_what_is_not_an_optimizer(optimizer, message):
    with pytest.raises(TypeError, match=message):
        SkippedUpdates(optimizer)


@pytest.mark.parametrize("scaler", [object(), 2.0, "cpu"])
def test_refuses_a_scaler_without_get_scale(scaler):
    optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"scaler must be a torch.amp.GradScaler \(anything with get_scale\(\)\) or None"):
        SkippedUpdates(optimizer, scaler)


def test_refuses_an_optimizer_without_step_hooks():
    class Bare(torch.optim.Optimizer):
        def __init__(self):  # never calls Optimizer.__init__
            self.param_groups = []

    with pytest.raises(TypeError, match="innermost optimizer \\(Bare\\) has no step hooks"):
        SkippedUpdates(Bare())


# --------------------------------------------------------------------- ColossalAI
@pytest.fixture
def colossalai_on_cpu(monkeypatch, tmp_path):
    """ColossalAI's fp16 mixin on CPU: its DynamicGradScaler calls ``device_count()``, which the CPU accelerator
    refuses (one device here), and its overflow check all-reduces, so a one-rank gloo group."""
    pytest.importorskip("colossalai")
    from colossalai.accelerator.cpu_accelerator import CpuAccelerator

    monkeypatch.setattr(CpuAccelerator, "device_count", lambda self: 1)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    yield
    if owned:
        dist.destroy_process_group()


def train_colossalai(model, x, optimizer, detector, inject=K):
    told, changed = [], []
    for update in range(N):
        before = [p.detach().clone() for p in model.parameters()]
        optimizer.zero_grad()
        optimizer.backward(model(x).float().square().mean())
        if update == inject:
            model.weight.grad[0, 0] = math.inf
        optimizer.step()
        told.append(detector())
        changed.append(any(not torch.equal(a, b) for a, b in zip(before, model.parameters())))
    return told, changed


def test_colossalai_fp16_mixed_precision_optimizer_skip_is_told(colossalai_on_cpu):
    from colossalai.amp.naive_amp.mixed_precision_optimizer import MixedPrecisionOptimizer

    model, x = model_and_data(torch.float16)
    inner = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer = MixedPrecisionOptimizer(inner, precision="fp16", initial_scale=2.0**4)
    detector = SkippedUpdates(optimizer)
    assert innermost_optimizer(optimizer) is inner and detector.scaler is None
    told, changed = train_colossalai(model, x, optimizer, detector)
    assert told == EXPECTED and changed == [not t for t in EXPECTED]
    # its scale did not fall (hysteresis 2): the step count is what tells
    assert optimizer.mixed_precision.loss_scale == 2.0**4 and detector.steps == N - 1


def test_colossalai_bf16_mixed_precision_optimizer_never_skips(colossalai_on_cpu):
    from colossalai.amp.naive_amp.mixed_precision_optimizer import MixedPrecisionOptimizer

    model, x = model_and_data(torch.bfloat16)
    optimizer = MixedPrecisionOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), precision="bf16")
    detector = SkippedUpdates(optimizer)
    told, changed = train_colossalai(model, x, optimizer, detector, inject=None)
    assert told == [False] * N and all(changed)


@pytest.mark.filterwarnings(r"ignore:`torch.cuda.amp.GradScaler\(args...\)` is deprecated:FutureWarning")
@pytest.mark.parametrize("fused", [False, True])
def test_colossalai_torch_amp_optimizer_skip_is_told(fused):
    """The booster's FP16TorchMixedPrecision wrapper: its ``.scaler`` is taken, its ``.optim`` hooked. Its
    ``torch.cuda.amp.GradScaler`` disables itself without CUDA, so a CPU one replaces it (the same class's step)."""
    pytest.importorskip("colossalai")
    from colossalai.booster.mixed_precision.fp16_torch import TorchAMPOptimizer

    model, x = model_and_data()
    inner = torch.optim.SGD(model.parameters(), lr=0.1, fused=fused)
    with pytest.warns(UserWarning, match="CUDA is not available"):
        optimizer = TorchAMPOptimizer(inner)
    optimizer.scaler = GradScaler("cpu", init_scale=2.0**10)
    detector = SkippedUpdates(optimizer)
    assert detector.optimizer is inner and detector.scaler is optimizer.scaler
    told, changed = [], []
    for update in range(N):
        before = [p.detach().clone() for p in model.parameters()]
        optimizer.zero_grad()
        optimizer.backward(model(x).square().mean())
        if update == K:
            model.weight.grad[0, 0] = math.inf
        optimizer.step()  # the scaler's step and update
        told.append(detector())
        changed.append(any(not torch.equal(a, b) for a, b in zip(before, model.parameters())))
    assert told == EXPECTED and changed == [not t for t in EXPECTED]
    assert detector.steps == (N if fused else N - 1)


def test_colossalai_hybrid_parallel_amp_optimizer_steps_as_mixed_precision_optimizer():
    """HybridParallelAMPOptimizer (needs a HybridParallelModule) skips through MixedPrecisionOptimizer.step itself."""
    pytest.importorskip("colossalai")
    from colossalai.amp.naive_amp.mixed_precision_optimizer import MixedPrecisionOptimizer
    from colossalai.booster.plugin.hybrid_parallel_plugin import HybridParallelAMPOptimizer

    assert HybridParallelAMPOptimizer.step is MixedPrecisionOptimizer.step


def test_a_torch_optimizer_wrapping_another_is_looked_through():
    """Like ColossalAI's legacy FP16Optimizer (CUDA only): a torch Optimizer whose own step always runs, and skips
    its ``_optimizer``'s on overflow; only the inner step tells."""
    class FP16Like(torch.optim.Optimizer):
        def __init__(self, inner):
            super().__init__([torch.zeros(1, requires_grad=True)], {})
            self._optimizer = inner

        def zero_grad(self, set_to_none=True):
            self._optimizer.zero_grad(set_to_none)

        def step(self, closure=None):
            params = [p for g in self._optimizer.param_groups for p in g["params"]]
            if all(torch.isfinite(p.grad).all() for p in params):
                self._optimizer.step()

    model, x = model_and_data()
    inner = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer = FP16Like(inner)
    detector = SkippedUpdates(optimizer)
    assert detector.optimizer is inner
    scaler = GradScaler("cpu", enabled=False)  # the wrapper checks the overflow itself
    told, changed = train(model, x, optimizer, scaler, detector)
    assert told == EXPECTED and changed == [not t for t in EXPECTED]


def test_a_step_that_raised_does_not_stop_the_count():
    model, x = model_and_data()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    detector = SkippedUpdates(optimizer)
    model(x).sum().backward()
    with pytest.raises(ZeroDivisionError):
        optimizer.step(lambda: 1 / 0)  # the pre-hook ran, the post-hook never does
    assert detector() is True
    optimizer.step()
    assert detector() is False and detector.steps == 1
