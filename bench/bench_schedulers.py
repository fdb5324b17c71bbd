"""Issue #2 benchmark: step() cost vs torch and colossalai, lr_table vs stepping, step_to vs replay.

Run: python bench/bench_schedulers.py [--quick]. Prints a markdown table; every ratio is against a
baseline measured in the same run.
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


def main(quick: bool) -> int:
    try:
        import colossalai.nn.lr_scheduler as L
    except Exception:  # pragma: no cover
        L = None
    calls = 5000 if quick else 20000
    table_n = 10**5 if quick else 10**6
    base_step = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer(), BIG).step
    baseline = per_call_us(base_step, calls)
    print(f"baseline: torch CosineAnnealingLR.step() = {baseline:.2f} us (4 param groups); each row's ratio is against "
          "the baseline timed in alternation with it (best of 7 rounds each), so a load change between rows cancels\n")
    print(f"| scheduler | step() us | vs torch Cosine | torch same-name us | colossalai us | lr_table {table_n:.0e} steps s "
          f"| stepping loop s | speed-up | step_to({BIG:.0e}) us | replay (extrapolated) s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    worst_ratio, worst_table, worst_jump = 0.0, float("inf"), 0.0
    for label, kw in KW.items():
        name = label.split()[0]
        ours = cs.SCHEDULERS[name](optimizer(), BIG, **kw)
        us, base_us = paired_us(ours.step, base_step, calls // 4)
        theirs = per_call_us(TORCH[name](optimizer()).step, calls) if name in TORCH else float("nan")
        colossal = float("nan")
        if L is not None and name in cs.COLOSSALAI_SCHEDULERS:
            c = getattr(L, name)(optimizer(), BIG, **kw)
            colossal = per_call_us(c.step, calls)
        fresh = cs.SCHEDULERS[name](optimizer(), BIG, **kw)
        t_table = seconds(lambda: fresh.lr_table(range(table_n)), repeats=1 if name in ("LambdaLR", "MultiplicativeLR") else 3)
        stepper = cs.SCHEDULERS[name](optimizer(), BIG, **kw)
        t_loop = seconds(lambda: [stepper.step() for _ in range(table_n)], repeats=1)
        jumper = cs.SCHEDULERS[name](optimizer(), BIG, **kw)
        if name == "MultiplicativeLR":  # a first jump multiplies every skipped factor; the product is then cached
            jumper.step_to(BIG)
            jump = per_call_us(lambda: jumper.step_to(BIG), 200)
        else:
            jump = per_call_us(lambda: jumper.step_to(BIG), 2000)
        replay = us * 1e-6 * BIG
        worst_ratio = max(worst_ratio, us / base_us)
        worst_table = min(worst_table, t_loop / t_table)
        worst_jump = max(worst_jump, jump)
        print(f"| {label} | {us:.2f} | {us / base_us:.2f}x | {theirs:.2f} | {colossal:.2f} | {t_table:.4f} | {t_loop:.2f} "
              f"| {t_loop / t_table:.0f}x | {jump:.2f} | {replay:.0f} |")
    print(f"\nworst step()/torch-Cosine ratio {worst_ratio:.2f}x; worst lr_table speed-up {worst_table:.0f}x; "
          f"worst step_to {worst_jump:.2f} us")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer calls and 1e5-step tables")
    sys.exit(main(parser.parse_args().quick))
