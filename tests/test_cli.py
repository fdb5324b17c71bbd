"""Issues #4/#5: the colossal-sched command, driven as a user would (subprocess)."""
import json
import struct
import subprocess
import sys

import pytest

import colossal_sched as cs
from colossal_sched.preview import preview_scheduler

CLI = [sys.executable, "-m", "colossal_sched.cli"]


def cli(*args):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=120)


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
