"""Issue #5: lr logging from the hook (TensorBoard, callable, rank 0 only); HF Trainer and Lightning adapters."""
import pytest
import torch

import colossal_sched as cs
from conftest import make_optimizer
from distributed import run
from hooks import LRSchedulerHook
import workers


def test_hook_logs_lr_and_momentum_per_group_to_tensorboard_and_a_callable(tmp_path):
    from torch.utils.tensorboard import SummaryWriter
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    p = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    opt = torch.optim.SGD([{"params": [p[0]], "name": "decay"}, {"params": [p[1]], "lr": 0.05}], lr=0.1, momentum=0.9)
    sched = cs.OneCycleLR(opt, 30)
    seen = []
    writer = SummaryWriter(str(tmp_path))
    hook = LRSchedulerHook(sched, writer=writer, log_fn=lambda n, values: seen.append((n, values)))
    for n in range(8):
        for _micro in range(3):
            hook.step(n)  # logged once per global step
    writer.close()
    assert [n for n, _ in seen] == list(range(8))
    for n, values in seen:
        assert values["lr/decay"] == sched.lr_at(n)[0] and values["lr/group1"] == sched.lr_at(n)[1]
        assert values["momentum/decay"] == sched.momentum_at(n)[0]
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert {"lr/decay", "lr/group1", "momentum/decay", "momentum/group1"} <= set(events.Tags()["scalars"])
    tb = [(e.step, e.value) for e in events.Scalars("lr/decay")]
    assert [s for s, _ in tb] == list(range(8))
    assert [v for _, v in tb] == pytest.approx([sched.lr_at(n)[0] for n in range(8)], rel=1e-6)  # float32 in events


@pytest.mark.multiprocess
@pytest.mark.timeout(120)
def test_logging_happens_on_rank_0_only(tmp_path):
    (tmp_path / "run").mkdir()
    lines = run(2, workers.logging_rank0_only, str(tmp_path), tmp_path=tmp_path / "run")
    assert lines == [6, 0]


def test_legacy_trainer_states_hold_the_lr():
    class Trainer:
        states, cur_step, cur_epoch = {}, 0, 0

    hook = LRSchedulerHook(cs.StepLR(make_optimizer(), 10, step_size=2, gamma=0.5))
    trainer = Trainer()
    hook.after_hook_is_attached(trainer)
    for n in range(5):
        trainer.cur_step = n
        hook.before_train_iter(trainer)
        hook.after_train_iter(trainer, None, None, None)
        assert trainer.states["metrics"]["train"]["LR"].get_last_step_value() == hook.lr_scheduler.lr_at(n + 1)[0]


# --------------------------------------------------------------- HF Trainer
class TinyRegression(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)

    def forward(self, x, y):
        return {"loss": ((self.lin(x).squeeze(-1) - y) ** 2).mean()}


def regression_data(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = x.sum(-1)
    return [{"x": x[i], "y": y[i]} for i in range(n)]


@pytest.mark.timeout(240)
def test_hf_trainer_callback_runs_update_n_with_lr_at_n(tmp_path):
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from hooks.hf_callback import ColossalSchedHFCallback

    model = TinyRegression()
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    sched = cs.CosineAnnealingWarmupLR(opt, 12, warmup_steps=3)
    seen = []

    class Record(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            seen.append((state.global_step, opt.param_groups[0]["lr"]))

    args = TrainingArguments(output_dir=str(tmp_path), max_steps=12, per_device_train_batch_size=4,
                             gradient_accumulation_steps=2, logging_steps=1, report_to=[], save_strategy="no",
                             use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=regression_data(), optimizers=(opt, sched),
                      callbacks=[ColossalSchedHFCallback(sched, sync=False), Record()])
    trainer.train()
    assert [n for n, _ in seen] == list(range(12))
    assert all(lr == sched.lr_at(n)[0] for n, lr in seen)
    logged = [h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h]
    assert logged and all(any(lr == pytest.approx(v) for v in sched.lr_table(range(13))[:, 0]) for lr in logged)


# ---------------------------------------------------------------- Lightning
@pytest.mark.timeout(240)
def test_lightning_callback_drives_the_schedule_and_resumes_from_a_checkpoint(tmp_path):
    import lightning.pytorch as pl

    from hooks.lightning_callback import ColossalSchedLightningCallback

    seen = []

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            seen.append((self.trainer.global_step, self.optimizers().optimizer.param_groups[0]["lr"]))
            x, y = batch["x"], batch["y"]
            return ((self.lin(x).squeeze(-1) - y) ** 2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)

    loader = torch.utils.data.DataLoader(regression_data(), batch_size=8)

    def factory(optimizer):
        return cs.OneCycleLR(optimizer, 20)

    def trainer(max_steps, callback):
        return pl.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                          enable_model_summary=False, enable_checkpointing=False, callbacks=[callback])

    first = ColossalSchedLightningCallback(factory, sync=False)
    t = trainer(10, first)
    t.fit(Module(), loader)
    t.save_checkpoint(tmp_path / "ten.ckpt")
    reference = first.hook.lr_scheduler
    assert [n for n, _ in seen] == list(range(10))
    assert all(lr == reference.lr_at(n)[0] for n, lr in seen)
    seen.clear()
    again = ColossalSchedLightningCallback(factory, sync=False)
    trainer(20, again).fit(Module(), loader, ckpt_path=tmp_path / "ten.ckpt")
    assert [n for n, _ in seen] == list(range(10, 20))
    assert all(lr == reference.lr_at(n)[0] for n, lr in seen)
