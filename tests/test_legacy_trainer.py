"""Issue #11: a true drop-in for ColossalAI's legacy Trainer (import swapped, nothing else)."""
import re
import subprocess
import sys

import pytest

import colossal_sched as cs
from conftest import make_optimizer
from distributed import run
from hooks import LRSchedulerHook
from hooks.colossalai_compat import unwrap_grad_accum
import legacy_workers


def test_import_hooks_does_not_import_colossalai():
    code = ("import sys, hooks; from hooks import hf_callback; assert 'colossalai' not in sys.modules, 'imported';"
            "print(hooks.LossHook.__module__, 'colossalai' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["colossalai.legacy.trainer.hooks._metric_hook", "True"]


def test_every_colossalai_hook_name_resolves_lazily_and_lrschedulerhook_is_ours():
    import hooks
    from colossalai.legacy.trainer import hooks as chooks

    for name in chooks.__all__:
        if name == "LRSchedulerHook":
            assert hooks.LRSchedulerHook is LRSchedulerHook
        else:
            assert getattr(hooks, name) is getattr(chooks, name), name
    with pytest.raises(AttributeError, match="NoSuchHook"):
        hooks.NoSuchHook


def test_grad_accum_wrapper_is_unwrapped_with_its_size():
    from colossalai.legacy.engine.gradient_accumulation import GradAccumLrSchedulerByStep

    sched = cs.CosineAnnealingLR(make_optimizer(), 20)
    assert unwrap_grad_accum(sched) == (sched, 1)
    hook = LRSchedulerHook(GradAccumLrSchedulerByStep(sched, accumulate_size=4), sync=False)
    assert hook.lr_scheduler is sched and hook.accumulate_size == 4
    with pytest.raises(ValueError, match="accumulate_size"):
        unwrap_grad_accum(GradAccumLrSchedulerByStep(sched, accumulate_size=0))
    with pytest.raises(TypeError, match="lr_scheduler must be a colossal_sched scheduler"):
        import torch

        LRSchedulerHook(GradAccumLrSchedulerByStep(torch.optim.lr_scheduler.StepLR(make_optimizer(), 3), 2))


@pytest.mark.multiprocess
@pytest.mark.timeout(300)
def test_gradient_accumulation_steps_on_updates_like_colossalai(tmp_path):
    """legacy initialize with gradient_accumulation 1, 2, 4 wraps the scheduler; our hook accepts the
    wrapper and every micro-batch runs with colossalai's lr (and the LR metric matches after it)."""
    sizes = [1, 2, 4]
    results = run(2, legacy_workers.grad_accum, sizes, 2, tmp_path=tmp_path, timeout=280)
    for res in results:
        for size in sizes:
            case = res[str(size)]
            assert case["wrapped"] == ["GradAccumLrSchedulerByStep"] * 2
            theirs, ours = case["theirs"], case["ours"]
            assert len(ours) == len(theirs) == 2 * legacy_workers.MICRO_BATCHES_PER_EPOCH
            assert ours == theirs, f"gradient_accumulation={size}"
            # the schedule advances once per update (A micro-batches), not per micro-batch
            lrs = [lr for _, lr, _ in ours]
            assert all(lrs[k] == lrs[k - k % size] for k in range(len(lrs)))
            assert all(lrs[k] != lrs[k - 1] for k in range(size, len(lrs), size))
            assert ours[-1][2] == 0.0  # the LR metric after the last update: lr_at(total_steps)
        for size in sizes:  # by epoch: ColossalAI's wrapper steps its scheduler every A epochs; so does the hook
            case = res[f"{size}/epoch"]
            assert case["wrapped"] == ["GradAccumLrSchedulerByStep"] * 2
            assert case["ours"] == case["theirs"], f"by_epoch, gradient_accumulation={size}"
            assert len(case["ours"]) == 4 * legacy_workers.MICRO_BATCHES_PER_EPOCH
    assert results[0] == results[1]


@pytest.mark.multiprocess
@pytest.mark.timeout(300)
def test_titans_hook_list_with_import_swapped_logs_the_same_lr(tmp_path):
    """ColossalAI's GPT titans example's hooks, ``from colossalai.legacy.trainer import hooks`` swapped for ``import hooks``."""
    results = run(2, legacy_workers.titans, 8, tmp_path=tmp_path, timeout=280)
    rank0 = results[0]
    assert rank0["lazy"] == [True, True]
    lr = {k: [m.group(1) for line in v for m in [re.search(r"LR = ([^ |]+)", line)] if m] for k, v in rank0["logs"].items()}
    assert len(lr["colossalai"]) == 8 and len(set(lr["colossalai"])) > 4
    assert lr["ours"] == lr["colossalai"]
    epochs = {k: [line.split("]")[0] for line in v if line.startswith("[Epoch")] for k, v in rank0["logs"].items()}
    assert epochs["ours"] == epochs["colossalai"] == [f"[Epoch {e} / Train" for e in range(8)]
    assert all("LR =" not in line for v in results[1]["logs"].values() for line in v)  # dp rank 0 logs


def test_without_colossalai_a_legacy_hook_name_is_an_attribute_error_with_the_install_hint():
    code = ("import sys; sys.modules['colossalai'] = None; import hooks\n"
            "try:\n    hooks.LossHook\nexcept AttributeError as e:\n    print(e)\n"
            "print(hooks.LRSchedulerHook.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "'LossHook'" in out.stdout and "pip install --no-deps colossalai==0.5.0" in out.stdout
    assert out.stdout.splitlines()[-1] == "LRSchedulerHook"
