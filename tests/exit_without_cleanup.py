"""A user's script that never cleans up: the hook with lr sync, overlap and the checkpoint lock, a few
updates, then the end of the script (no close, no release, no destroy_process_group). It must exit 0.

    torchrun --nproc_per_node 2 tests/exit_without_cleanup.py CKPT_DIR
"""
import sys

import torch

from colossal_sched import CosineAnnealingWarmupLR
from colossal_sched.ckpt_lock import RunLock
from colossal_sched.launch import init_distributed
from hooks import LRSchedulerHook

init_distributed("gloo")
model = torch.nn.Linear(4, 4)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
hook = LRSchedulerHook(CosineAnnealingWarmupLR(optimizer, total_steps=20, warmup_steps=2), overlap=True)
lock = RunLock(sys.argv[1]).acquire()
for n in range(5):
    hook.step(n)
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
hook.step(5)  # the last sync is still in flight at exit
