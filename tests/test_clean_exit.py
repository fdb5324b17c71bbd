"""Issue #19: a script that never cleans up (the hook with lr sync, overlap and the checkpoint lock; no
close, no release, no destroy_process_group) exits 0 with no abort line, 30 runs in a row, at worlds 2
and 4. The ranks are forked with torchrun's environment from one interpreter that imported torch
(tests/forked_launch.py), so 30 runs cost seconds; each still ends at its own interpreter exit."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(ROOT, "tests", "forked_launch.py")
SCRIPT = os.path.join(ROOT, "tests", "exit_without_cleanup.py")
PRELOAD = [arg for name in ("hooks", "colossal_sched.launch", "colossal_sched.ckpt_lock", "torch._dynamo")
           for arg in ("--preload", name)]  # what the script imports (torch._dynamo: optimizer.step's), once


@pytest.mark.multiprocess
@pytest.mark.timeout(150)
@pytest.mark.parametrize("world", [2, 4])
def test_a_script_that_never_cleans_up_exits_0_thirty_times_in_a_row(tmp_path, world):
    ckpt = tmp_path / "ckpt"
    out = subprocess.run([sys.executable, LAUNCHER, "--world", str(world), "--runs", "30", "--out-dir", str(tmp_path),
                          *PRELOAD, SCRIPT, str(ckpt)], cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                         capture_output=True, text=True, timeout=140)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["exits"] == [[0] * world] * 30 and result["aborts"] == 0, result["tails"]
    assert os.listdir(ckpt) == []  # the checkpoint lock was released at exit
