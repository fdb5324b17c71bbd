"""colossal_sched.launch.init_distributed: its arguments, and a world of one process without torchrun.
(Under torchrun, across restarts and nodes, it is exercised by tests/test_multinode.py.)"""
import os
import sys

import pytest

import forked

from colossal_sched._validate import ArgumentTypeError
from colossal_sched.launch import BACKENDS, init_distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("backend", ["mpi", "GLOO", "", None])
def test_unknown_backend_is_refused_naming_the_allowed_ones(backend):
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'gloo', 'nccl'\)"):
        init_distributed(backend)
    assert BACKENDS == ("auto", "gloo", "nccl")


@pytest.mark.parametrize("timeout, wrong_type", [(0, False), (-1.0, False), (float("nan"), False), (float("inf"), False),
                                                 ("60", True), (True, True), (None, True)])
def test_bad_timeout_is_refused_naming_it(timeout, wrong_type):
    with pytest.raises(ValueError, match="timeout must be a finite number of seconds > 0") as refused:
        init_distributed("gloo", timeout)
    assert isinstance(refused.value, ArgumentTypeError) == wrong_type


def test_without_torchrun_it_is_a_world_of_one_process():
    code = """
import torch, torch.distributed as dist
from colossal_sched.launch import init_distributed
import forked

init_distributed("auto", timeout=30)
t = torch.ones(2)
dist.all_reduce(t)
print(dist.get_rank(), dist.get_world_size(), dist.get_backend(), t.tolist())
try:
    init_distributed("gloo")
except RuntimeError as e:
    print("again:", e)
dist.destroy_process_group()
"""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT",
                        "TORCHELASTIC_USE_AGENT_STORE")}
    out = forked.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "CUDA_VISIBLE_DEVICES": ""},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "0 1 gloo [1.0, 1.0]"
    assert lines[1] == "again: init_distributed: the default process group is already initialised"
