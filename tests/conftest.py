import os
import sys

import pytest
import torch
from hypothesis import settings

# Property tests draw the same examples on every run (a suite that fails on a later draw is flaky):
# a counterexample found once is pinned with @example next to its test.
settings.register_profile("suite", derandomize=True, print_blob=True)
settings.load_profile("suite")

sys.path.insert(0, os.path.dirname(__file__))

BASE_LRS = (0.1, 0.2, 0.05, 0.4)


def make_optimizer(n_groups=4, kind="sgd", lrs=BASE_LRS):
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(n_groups)]
    groups = [{"params": [p], "lr": lrs[i % len(lrs)]} for i, p in enumerate(params)]
    if kind == "adam":
        return torch.optim.Adam(groups, lr=0.1)
    if kind == "adagrad":
        return torch.optim.Adagrad(groups, lr=0.1)
    return torch.optim.SGD(groups, lr=0.1, momentum=0.9)


@pytest.fixture
def optimizer():
    return make_optimizer()


def pytest_collection_modifyitems(items):
    """Long files first: ``-n 2 --dist loadgroup`` (pytest.ini) then starts each worker on a long group (the
    two-node jobs, the fault-resume jobs) and fills in with short tests, instead of ending on a long one alone.
    A file's length is guessed from its marks: ``multinode`` first, then the longest ``timeout`` it declares."""
    def weight(item):
        timeout = item.get_closest_marker("timeout")
        return (bool(item.get_closest_marker("multinode")), timeout.args[0] if timeout and timeout.args else 0)

    heaviest = {}
    for item in items:
        heaviest[item.path] = max(heaviest.get(item.path, (False, 0)), weight(item))
    items.sort(key=lambda item: heaviest[item.path], reverse=True)  # stable: the order within a file is kept
