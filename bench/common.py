"""Helpers shared by the benchmarks: timing and a 4-group optimizer."""
import time
import warnings

import torch

warnings.filterwarnings("ignore")


def optimizer(n_groups=4, momentum=0.9):
    params = [torch.nn.Parameter(torch.zeros(8)) for _ in range(n_groups)]
    return torch.optim.SGD([{"params": [p], "lr": 0.1 * (i + 1)} for i, p in enumerate(params)], lr=0.1, momentum=momentum)


def per_call_us(fn, calls, repeats=5):
    """Best-of-``repeats`` microseconds per call of ``fn()``."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls * 1e6)
    return best


def seconds(fn, repeats=3):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
