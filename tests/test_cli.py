"""Issues #4/#5: the colossal-sched command, driven as a user would (subprocess)."""
import json
import struct
import sys

import numpy as np
import pytest

import colossal_sched as cs
from colossal_sched.preview import preview_scheduler
import forked


CLI = [sys.executable, "-m", "colossal_sched.cli"]


def cli(*args):
    return forked.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=120)


def png_size(path):
    data = open(path, "rb").read(32)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_list_names_every_scheduler_with_parameters_and_defaults():
    out = cli("list")
    assert out.returncode == 0
    for name in cs.SCHEDULERS:
        assert f"{name}(optimizer, total_steps" in out.stdout
    assert "CosineAnnealingWarmupLR(optimizer, total_steps, warmup_steps=0, eta_min=0.0, last_epoch=-1)" in out.stdout
    marked = [line.split("(")[0] for line in out.stdout.splitlines() if line.endswith("[colossalai.nn.lr_scheduler]")]
    assert marked == list(cs.COLOSSALAI_SCHEDULERS) and len(marked) == 14


def test_plot_png_is_a_valid_image_of_the_requested_size(tmp_path):
    out = cli("plot", "OneCycleLR", "--total-steps", 1000, "--lr", 0.1, "--out", tmp_path / "lr.png", "--size", "640x480",
              "--compare", "CosineAnnealingWarmupLR:warmup_steps=100,eta_min=0.001")
    assert out.returncode == 0, out.stderr
    assert png_size(tmp_path / "lr.png") == (640, 480)
    from PIL import Image

    with Image.open(tmp_path / "lr.png") as img:
        img.verify()


def test_plot_ten_million_steps(tmp_path):
    out = cli("plot", "PolynomialWarmupLR", "--total-steps", 10**7, "--param", "warmup_steps=100000", "--param",
              "power=2.0", "--out", tmp_path / "big.png")
    assert out.returncode == 0, out.stderr
    assert png_size(tmp_path / "big.png") == (1000, 600)


def test_terminal_plot_without_out():
    out = cli("plot", "MultiStepWarmupLR", "--total-steps", 100, "--param", "warmup_steps=10", "--param", "milestones=[40,70]")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert len(lines) >= 16 and "*" in out.stdout and "MultiStepWarmupLR" in lines[-1]


def test_show_config_key_points(tmp_path):
    yaml_path = tmp_path / "config.yaml"
    yaml_path.write_text("lr: 0.1\nlr_scheduler:\n  type: CosineAnnealingWarmupLR\n  total_steps: 1000\n  warmup_steps: 100\n"
                         "  eta_min: 0.001\n")
    out = cli("show", yaml_path)
    assert out.returncode == 0, out.stderr
    s = preview_scheduler("CosineAnnealingWarmupLR", 1000, 0.1, warmup_steps=100, eta_min=0.001)
    table = {line.split()[0] + (" " + line.split()[1] if not line.split()[1].isdigit() else ""): line for line in out.stdout.splitlines()[2:]}
    assert f"{s.lr_at(100)[0]:.6e}" in table["warmup end"] and " 100 " in table["warmup end"]
    assert f"{0.001:.6e}" in table["end"] and "1000" in table["end"]
    assert "peak" in table
    json_path = tmp_path / "c.json"
    json_path.write_text(json.dumps({"type": "StepLR", "total_steps": 30, "step_size": 10, "gamma": 0.5, "lr": 1.0}))
    out = cli("show", json_path)
    assert out.returncode == 0 and f"{0.125:.6e}" in out.stdout


@pytest.mark.parametrize("args,needle", [
    (["plot", "Cosine", "--total-steps", 10], "unknown scheduler"),
    (["plot", "CosineAnnealingLR", "--total-steps", 0], "--total-steps"),
    (["plot", "CosineAnnealingLR", "--total-steps", 10, "--lr", "-1"], "--lr"),
    (["plot", "CosineAnnealingWarmupLR", "--total-steps", 10, "--param", "warmup_steps=20"], "warmup_steps"),
    (["plot", "CosineAnnealingLR", "--total-steps", 10, "--param", "warmup_step=2"], "warmup_step"),
    (["plot", "CosineAnnealingLR", "--total-steps", 10, "--param", "oops"], "--param"),
    (["plot", "CosineAnnealingLR", "--total-steps", 10, "--size", "10x10"], "--size"),
    (["show", "/nonexistent.yaml"], "CONFIG"),
    (["inspect", "/nonexistent"], "CKPT_DIR"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_give_one_line_and_exit_2(args, needle):
    out = cli(*args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and needle in out.stderr, out.stderr


# ------------------------------------------------------------------ issue #11
def test_list_shows_every_accepted_parameter_and_a_plain_formula():
    out = cli("list")
    assert out.returncode == 0
    assert "FlatAnnealingLR(optimizer, total_steps, pct_start=0.72, last_epoch=-1, *, eta_min=0.0)" in out.stdout
    assert "three_phase=False" in out.stdout
    for markup in (":math:", "\\", "``", ":class:"):
        assert markup not in out.stdout, markup
    lines = out.stdout.splitlines()
    formulas = [line for line in lines if line.startswith("    lr(t) = ")]
    assert len(formulas) == len(cs.SCHEDULERS)
    assert "    lr(t) = base*gamma^floor(t/step_size)" in lines


@pytest.mark.parametrize("name,total,params", [
    ("CosineAnnealingWarmupLR", 10_000, {"warmup_steps": 500, "eta_min": 3e-5}),
    ("OneCycleLR", 1001, {"pct_start": 0.25}),
    ("FlatAnnealingWarmupLR", 999, {"warmup_steps": 7, "pct_start": 0.3}),
    ("ExponentialLR", 50, {"gamma": 1.05}),
    ("MultiStepWarmupLR", 100, {"warmup_steps": 10, "milestones": [40, 70]}),
    ("CosineAnnealingWarmupLR", 3_000_001, {"warmup_steps": 123_457}),  # past the exhaustive limit: boundaries only
    ("OneCycleLR", 2_000_003, {"pct_start": 0.3}),
])
def test_key_points_peak_is_exact(name, total, params):
    from colossal_sched.preview import key_points

    s = preview_scheduler(name, total, 0.1, **params)
    table = s.lr_table(range(total + 1))[:, 0]
    first = int(np.flatnonzero(table >= table.max() - 1e-12 * table.max())[0])
    points = {what: (step, lr) for what, step, lr in key_points(s)}
    assert points["peak"][0] == first
    assert points["end"][0] == total and points["start"][0] == 0
    for what, (step, lr) in points.items():
        assert lr == s.lr_at(step)[0], what


def test_show_reports_the_real_peak_of_a_warmup_schedule(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 3.0e-4\nlr_scheduler:\n  type: CosineAnnealingWarmupLR\n  total_steps: 10000\n  warmup_steps: 500\n")
    out = cli("show", path)
    assert out.returncode == 0, out.stderr
    rows = {" ".join(line.split()[:-2]): int(line.split()[-2]) for line in out.stdout.splitlines()[2:]}
    assert rows == {"start": 0, "peak": 499, "warmup end": 500, "end": 10000}


def test_show_yaml_without_pyyaml_gives_the_install_hint(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("type: StepLR\ntotal_steps: 10\n")
    code = ("import sys; sys.modules['yaml'] = None; from colossal_sched.cli import main; "
            f"sys.exit(main(['show', {str(path)!r}]))")
    out = forked.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "pip install pyyaml" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.filterwarnings("ignore:To get the last learning rate computed:UserWarning")  # colossalai's get_lr() in step()
def test_inspect_names_a_torch_save_of_a_colossalai_scheduler_state(tmp_path):
    import torch
    from colossalai.nn.lr_scheduler import CosineAnnealingWarmupLR

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = CosineAnnealingWarmupLR(opt, 40, warmup_steps=4)
    for _ in range(7):
        opt.step()
        sched.step()
    torch.save(sched.state_dict(), tmp_path / "lr_scheduler.pt")
    out = cli("inspect", tmp_path / "lr_scheduler.pt")
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    assert "torch.save file (torch/ColossalAI scheduler state_dict" in first and "Booster" not in first.split("(")[1][:20]
    assert "step: 7" in out.stdout


def test_compare_plot_one_colour_per_schedule_and_the_legend_outside_the_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from colossal_sched.cli import figure
    from colossal_sched.preview import sample_steps

    curves = [("OneCycleLR", preview_scheduler("OneCycleLR", 1000, 0.1)),
              ("Cosine", preview_scheduler("CosineAnnealingWarmupLR", 1000, 0.1, warmup_steps=100, eta_min=0.001)),
              ("Cycle2", preview_scheduler("OneCycleLR", 1000, 0.1, pct_start=0.5))]
    steps = sample_steps(1000, 1000)
    tables = [(label, s.lr_table(steps)[:, 0], s.momentum_table(steps)) for label, s in curves]
    fig = figure(steps, tables, curves, 1000, 0.1, (1000, 600))
    fig.canvas.draw()
    lines = {line.get_label(): line.get_color() for ax in fig.axes for line in ax.get_lines() if not line.get_label().startswith("_")}
    for label, _, mom in tables:
        if mom is not None:
            assert lines[f"{label} momentum"] == lines[f"{label} lr"]
    assert len({lines[f"{label} lr"] for label, _, _ in tables}) == 3
    legend = fig.legends[0].get_window_extent()
    for ax in fig.axes:
        assert not legend.overlaps(ax.get_window_extent()), "the legend covers the axes"
    plt.close(fig)
