"""Issue #11: README's Usage example runs as printed (one CPU process, no arguments), and writes its
checkpoints where ``latest_checkpoint`` and ``colossal-sched inspect`` find them."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from colossal_sched.checkpoint import latest_checkpoint, read_dcp_state, unpack_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def usage_block() -> str:
    """The first ```python block under ``## Usage``."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text.split("\n## Usage\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no ```python block under ## Usage"
    return match.group(1)


def run_python(path, cwd, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "PYTHONWARNINGS")}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, str(path), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.timeout(300)
def test_readme_usage_block_runs_as_printed_and_resumes(tmp_path):
    script = tmp_path / "usage.py"
    script.write_text(usage_block())
    first = run_python(script, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stderr == "", first.stderr  # no warning a user would wonder about
    ckpt = tmp_path / "ckpt"
    assert latest_checkpoint(str(ckpt)) == str(ckpt / "step_00000100")
    saved, step = unpack_state(read_dcp_state(str(ckpt / "step_00000100")))
    assert step == 100 and saved["last_epoch"] == 100

    inspect = subprocess.run([sys.executable, "-m", "colossal_sched.cli", "inspect", "ckpt"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert inspect.returncode == 0, inspect.stderr
    assert "step_00000100" in inspect.stdout and "step: 100 " in inspect.stdout
    assert "steps remaining: 0 of 100" in inspect.stdout

    # a job stopped after update 50: the example, run again unchanged, resumes there and writes the same state
    shutil.rmtree(ckpt / "step_00000100")
    again = run_python(script, tmp_path)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert "step_00000050" not in again.stdout and "saved ckpt/step_00000100" in again.stdout
    resumed, step = unpack_state(read_dcp_state(str(ckpt / "step_00000100")))
    assert step == 100 and resumed["last_lr"] == saved["last_lr"]


@pytest.mark.timeout(300)
def test_readme_counting_progress_blocks_run_as_printed(tmp_path):
    """The ```python blocks of "## Counting progress", run in order in one fresh process: the ramp, the
    skipped update, the warning and the refusals do what the section says."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text.split("\n## Counting progress: updates, samples, tokens\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "two ```python blocks under ## Counting progress"
    script = tmp_path / "counting.py"
    script.write_text("\n".join(blocks))
    out = run_python(script, tmp_path)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert out.stdout.count("refused: ") == 3, out.stdout


@pytest.mark.parametrize("title", ["Every hyperparameter: weight decay, momentum, beta1, a key of your own",
                                   "Schedules that listen: ReduceLROnPlateauLR"])
def test_readme_section_block_runs_as_printed(title):
    """The one ```python block of the section ``## title``, executed here."""
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1
    exec(compile(blocks[0], "README.md", "exec"), {})


@pytest.mark.timeout(120)
def test_readme_range_test_block_runs_as_printed(tmp_path, monkeypatch, capsys):
    """The ```python block of "## Finding the peak lr: the range test": it prints what the README says it prints,
    leaves model and optimizer as they were (its own asserts) and draws lr_range.png."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text.split("\n## Finding the peak lr: the range test\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "one ```python block under ## Finding the peak lr"
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {})
    printed = capsys.readouterr().out.strip()
    assert " ".join(section.split("It prints `", 1)[1].split("`", 1)[0].split()) == printed
    assert os.path.getsize(tmp_path / "lr_range.png") > 0
