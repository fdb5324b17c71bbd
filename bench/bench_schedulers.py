"""step() against torch's CosineAnnealingLR.step(), and lr_table (first and repeated calls, 10^6 steps x 4 groups)
against stepping torch's scheduler, for every schedule; step_to's cost.

Run: python bench/bench_schedulers.py [--quick] [--only NAME ...] [--step-only]. Prints a markdown table; every
ratio is against a baseline measured in the same run.
"""
import argparse
import sys

import torch
from common import optimizer, per_call_us, seconds

import colossal_sched as cs

BIG = 10**7
KW = {
    "CosineAnnealingLR": {}, "CosineAnnealingWarmupLR": dict(warmup_steps=1000), "FlatAnnealingLR": {},
    "FlatAnnealingWarmupLR": dict(warmup_steps=1000), "LinearWarmupLR": dict(warmup_steps=1000),
    "MultiStepLR": dict(milestones=[10**5, 10**6]), "MultiStepWarmupLR": dict(warmup_steps=1000, milestones=[10**5, 10**6]),
    "OneCycleLR": {}, "PolynomialLR": dict(power=2.0), "PolynomialWarmupLR": dict(warmup_steps=1000, power=2.0),
    "LambdaLR": dict(lr_lambda=lambda t: 0.999999**t), "MultiplicativeLR": dict(lr_lambda=lambda t: 0.999999),
    "StepLR": dict(step_size=1000, gamma=0.9), "ExponentialLR": dict(gamma=0.9999999),
    # issue #12: the schedules of phases (not ColossalAI's)
    "WarmupStableDecayLR": dict(warmup_steps=1000, decay_ratio=0.2, decay_style="1-sqrt", min_lr=1e-5),
    "InverseSqrtLR": dict(warmup_steps=1000),
    "CosineAnnealingWarmRestartsLR": dict(first_cycle_steps=10**4, warmup_steps=100),
    "CosineAnnealingWarmRestartsLR cycle_mult=1.5": dict(first_cycle_steps=100, cycle_mult=1.5, cycle_decay=0.9),
    "ConstantWarmupLR": dict(warmup_steps=1000),
    "ComposedLR": dict(phases=[{"type": "warmup"}, {"type": "constant"}, {"type": "cosine", "end_lr": 1e-5}],
                       boundaries=[1000, 8 * 10**6]),
}  # fmt: skip
TORCH = {
    "CosineAnnealingLR": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, BIG),
    "CosineAnnealingWarmRestartsLR": lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, 10**4),
    "MultiStepLR": lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [10**5, 10**6]),
    "OneCycleLR": lambda o: torch.optim.lr_scheduler.OneCycleLR(o, [0.1] * 4, total_steps=BIG),
    "PolynomialLR": lambda o: torch.optim.lr_scheduler.PolynomialLR(o, BIG, power=2.0),
    "LambdaLR": lambda o: torch.optim.lr_scheduler.LambdaLR(o, KW["LambdaLR"]["lr_lambda"]),
    "MultiplicativeLR": lambda o: torch.optim.lr_scheduler.MultiplicativeLR(o, KW["MultiplicativeLR"]["lr_lambda"]),
    "StepLR": lambda o: torch.optim.lr_scheduler.StepLR(o, 1000, 0.9),
    "ExponentialLR": lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9999999),
}  # fmt: skip


def paired_us(fn, base, calls, rounds=7):
    """Best-of-``rounds`` microseconds per call of ``fn`` and of ``base``, timed in alternation."""
    best_fn = best_base = float("inf")
    for _ in range(rounds):
        best_base = min(best_base, per_call_us(base, calls, repeats=1))
        best_fn = min(best_fn, per_call_us(fn, calls, repeats=1))
    return best_fn, best_base


def torch_loop_s(name, n, cache={}):
    """Seconds to step torch's scheduler ``n`` times (its same-name one, else CosineAnnealingLR): what a table
    costs without lr_table. Timed once per torch class (each step costs the same)."""
    key = name if name in TORCH else "CosineAnnealingLR"
    if key not in cache:
        sched = TORCH[key](optimizer())
        cache[key] = seconds(lambda: [sched.step() for _ in range(n)], repeats=1)
    return key, cache[key]


def main(quick: bool, only: list[str] | None = None, step_only: bool = False) -> int:
    calls = 5000 if quick else 20000
    n = 10**5 if quick else 10**6
    base_step = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer(), BIG).step
    print(f"step(): each row against torch's CosineAnnealingLR.step() timed in alternation with it (best of 7 rounds), "
          f"4 param groups. lr_table({n:.0e} steps) x 4 groups: the first call on a fresh scheduler (best of 3 "
          f"fresh ones) and the best of 3 repeated calls, against stepping torch's scheduler {n:.0e} times (its same-name one, else CosineAnnealingLR)\n")
    print("| scheduler | step() us | torch Cosine us | step ratio | torch loop (class) s | first call s | repeated s "
          "| first-call speed-up | repeated speed-up | step_to(1e7) us |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    worst_step, worst_first, worst_rep = 0.0, float("inf"), float("inf")
    for label, kw in KW.items():
        if only and not any(o in label for o in only):
            continue
        name = label.split()[0]
        make = lambda: cs.SCHEDULERS[name](optimizer(), BIG, **kw)  # noqa: E731
        us, base_us = paired_us(make().step, base_step, calls // 4)
        worst_step = max(worst_step, us / base_us)
        if step_only:
            print(f"| {label} | {us:.2f} | {base_us:.2f} | {us / base_us:.2f}x |")
            continue
        first = min(seconds(lambda: make().lr_table(range(n)), repeats=1) for _ in range(3))  # a fresh one's first call
        fresh = make()
        fresh.lr_table(range(n))
        repeated = seconds(lambda: fresh.lr_table(range(n)), repeats=3)
        key, loop = torch_loop_s(name, n)
        jumper = make()
        jumper.step_to(BIG)  # MultiplicativeLR: a first jump multiplies every skipped factor, then it is cached
        jump = per_call_us(lambda: jumper.step_to(BIG), 200)
        worst_first, worst_rep = min(worst_first, loop / first), min(worst_rep, loop / repeated)
        print(f"| {label} | {us:.2f} | {base_us:.2f} | {us / base_us:.2f}x | {loop:.2f} ({key}) | {first:.4f} | "
              f"{repeated:.4f} | {loop / first:.0f}x | {loop / repeated:.0f}x | {jump:.2f} |")
    if step_only:
        print(f"\nworst step()/torch-Cosine ratio {worst_step:.2f}x")
        return 0
    print(f"\nworst step()/torch-Cosine ratio {worst_step:.2f}x; worst lr_table speed-up {worst_first:.0f}x (first call), "
          f"{worst_rep:.0f}x (repeated)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer calls and 1e5-step tables")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only the rows whose label contains one of these")
    parser.add_argument("--step-only", action="store_true", help="time step() only (the first four columns)")
    args = parser.parse_args()
    sys.exit(main(args.quick, args.only, args.step_only))
