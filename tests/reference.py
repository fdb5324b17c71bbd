"""Independent reference of the documented formulas (issue #2), written straight from the text."""
import math

CONFIGS = {
    "CosineAnnealingLR": dict(eta_min=0.01),
    "CosineAnnealingWarmupLR": dict(warmup_steps=5, eta_min=0.01),
    "FlatAnnealingLR": dict(pct_start=0.5, eta_min=0.02),
    "FlatAnnealingWarmupLR": dict(warmup_steps=4, pct_start=0.5, eta_min=0.01),
    "LinearWarmupLR": dict(warmup_steps=5),
    "MultiStepLR": dict(milestones=[5, 12], gamma=0.5),
    "MultiStepWarmupLR": dict(warmup_steps=4, milestones=[5, 12], gamma=0.5),
    "OneCycleLR": dict(),
    "PolynomialLR": dict(power=2.0, end_lr=0.001),
    "PolynomialWarmupLR": dict(warmup_steps=5, power=2.0),
    "LambdaLR": dict(lr_lambda=lambda t: 0.9**t),
    "MultiplicativeLR": dict(lr_lambda=lambda t: 0.95),
    "StepLR": dict(step_size=3, gamma=0.5),
    "ExponentialLR": dict(gamma=0.9),
}


def _warm(t, W, base):
    return (t + 1) / W * base


def _cos(u, L, lo, base):
    if L == 0:
        return lo
    u = max(min(u, L), 0)
    return lo + (base - lo) * (1 + math.cos(math.pi * u / L)) / 2


def _anneal(strategy, start, end, pct):
    if strategy == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    return (end - start) * pct + start


def onecycle(t, T, max_lr, pct_start=0.3, anneal_strategy="cos", div_factor=25.0, final_div_factor=1e4,
             three_phase=False, base_momentum=0.85, max_momentum=0.95):
    """(lr, momentum) of torch's OneCycleLR, holding its end value from T - 1 on."""
    initial = max_lr / div_factor
    low = initial / final_div_factor
    p = pct_start * T
    if three_phase:
        phases = [(p - 1, initial, max_lr, max_momentum, base_momentum), (2 * p - 2, max_lr, initial, base_momentum, max_momentum),
                  (T - 1, initial, low, max_momentum, max_momentum)]
    else:
        phases = [(p - 1, initial, max_lr, max_momentum, base_momentum), (T - 1, max_lr, low, base_momentum, max_momentum)]
    start = 0.0
    for i, (end, a, b, ma, mb) in enumerate(phases):
        if t <= end or i == len(phases) - 1:
            pct = 1.0 if end <= start else min(max((t - start) / (end - start), 0.0), 1.0)
            return _anneal(anneal_strategy, a, b, pct), _anneal(anneal_strategy, ma, mb, pct)
        start = end


def lr(name, kw, base, t, T):
    """lr of scheduler ``name`` with kwargs ``kw`` and base lr ``base`` after ``t`` steps."""
    t = min(t, T)
    W = kw.get("warmup_steps", 0)
    if name == "CosineAnnealingLR":
        return _cos(t, T, kw.get("eta_min", 0), base)
    if name == "CosineAnnealingWarmupLR":
        return _warm(t, W, base) if t < W else _cos(t - W, T - W, kw.get("eta_min", 0), base)
    if name == "FlatAnnealingLR":
        F = int(T * kw.get("pct_start", 0.72))
        return base if t < F else _cos(t - F, T - F, kw.get("eta_min", 0), base)
    if name == "FlatAnnealingWarmupLR":
        F = int((T - W) * kw.get("pct_start", 0.72))
        if t < W:
            return _warm(t, W, base)
        return base if t < W + F else _cos(t - W - F, T - W - F, kw.get("eta_min", 0), base)
    if name == "LinearWarmupLR":
        return (t + 1) / (W + 1) * base if t < W else max(0.0, (T - t) / (T - W) * base)
    if name == "MultiStepLR":
        return base * kw.get("gamma", 0.1) ** sum(m <= t for m in kw["milestones"])
    if name == "MultiStepWarmupLR":
        return _warm(t, W, base) if t < W else base * kw.get("gamma", 0.1) ** sum(W <= m <= t for m in kw["milestones"])
    if name == "OneCycleLR":
        return onecycle(t, T, base, **{k: v for k, v in kw.items() if k not in ("cycle_momentum",)})[0]
    if name in ("PolynomialLR", "PolynomialWarmupLR"):
        end, power = kw.get("end_lr", 0.0001), kw.get("power", 1.0)
        if t < W:
            return _warm(t, W, base)
        return (base - end) * (1 - min(t - W, T - W) / (T - W)) ** power + end
    if name == "LambdaLR":
        return base * kw["lr_lambda"](t)
    if name == "MultiplicativeLR":
        out = base
        for i in range(1, t + 1):
            out *= kw["lr_lambda"](i)
        return out
    if name == "StepLR":
        return base * kw.get("gamma", 0.1) ** (t // kw.get("step_size", 1))
    if name == "ExponentialLR":
        return base * kw.get("gamma", 1.0) ** t
    raise KeyError(name)


# ------------------------------------------------ issue #12: the new schedules, from the text
NEW_CASES = [
    ("WarmupStableDecayLR", dict(warmup_steps=3, decay_steps=6, min_lr=0.01)),
    ("WarmupStableDecayLR", dict(warmup_steps=2, decay_ratio=0.4, decay_style="cosine", min_lr=0.005)),
    ("WarmupStableDecayLR", dict(decay_steps=8, decay_style="1-sqrt")),
    ("WarmupStableDecayLR", dict(warmup_steps=4, decay_steps=0)),
    ("InverseSqrtLR", dict(warmup_steps=4)),
    ("InverseSqrtLR", dict(warmup_steps=0, timescale=3.0, min_lr=0.03)),
    ("CosineAnnealingWarmRestartsLR", dict(first_cycle_steps=6)),
    ("CosineAnnealingWarmRestartsLR", dict(first_cycle_steps=4, cycle_mult=1.5, cycle_decay=0.7, warmup_steps=1, eta_min=0.002)),
    ("CosineAnnealingWarmRestartsLR", dict(first_cycle_steps=3, cycle_mult=2.0, eta_min=0.01)),
    ("ConstantWarmupLR", dict(warmup_steps=5)),
    ("ConstantWarmupLR", dict()),
]


def new_lr(name, kw, base, t, T):
    """lr of a new (issue #12) scheduler after ``t`` steps, straight from the issue's formulas."""
    t = min(t, T)
    W = kw.get("warmup_steps", 0)
    if name == "ConstantWarmupLR":
        return _warm(t, W, base) if t < W else base
    if name == "WarmupStableDecayLR":
        lo = kw.get("min_lr", 0.0)
        D = kw["decay_steps"] if kw.get("decay_steps") is not None else int(kw["decay_ratio"] * (T - W))
        S = T - W - D
        if t < W:
            return _warm(t, W, base)
        if t < W + S:
            return base
        p = min(t - W - S, D) / D if D else 1.0
        g = {"linear": 1 - p, "cosine": (1 + math.cos(math.pi * p)) / 2, "1-sqrt": 1 - math.sqrt(p)}
        return lo + (base - lo) * g[kw.get("decay_style", "linear")]
    if name == "InverseSqrtLR":
        tau = kw.get("timescale") or max(W, 1)
        return _warm(t, W, base) if t < W else max(kw.get("min_lr", 0.0), base * math.sqrt(tau / (t - W + tau)))
    if name == "CosineAnnealingWarmRestartsLR":
        first, mult, decay = kw["first_cycle_steps"], kw.get("cycle_mult", 1.0), kw.get("cycle_decay", 1.0)
        lo, i, start = kw.get("eta_min", 0.0), 0, 0
        while start + int(first * mult**i) <= t:  # walk the cycles (fine for a reference)
            start += int(first * mult**i)
            i += 1
        L, p, u = int(first * mult**i), base * decay**i, t - start
        if u < W:
            return (u + 1) / W * p
        return lo + (p - lo) * (1 + math.cos(math.pi * (u - W) / (L - W))) / 2
    raise KeyError(name)


# ------------------------------- issue #12: ColossalAI's closed forms in the operation order they had before
# they were re-expressed on phases; the phases must give these bits exactly (lr_at, one step at a time).
def closed_form(name, kw, bases, t, T):
    """Per-group lr, float operations in the order of the former per-class formulas."""
    t = min(t, T)
    W = kw.get("warmup_steps", 0)
    lo = kw.get("eta_min", 0)

    def cos_factor(u, L):
        return 0.0 if L <= 0 else (1.0 + math.cos(math.pi * max(min(u, L), 0) / L)) / 2.0

    def warm(t, W):
        return (t + 1) / W if W else 1.0

    if name == "CosineAnnealingLR":
        c = cos_factor(t, T)
        return [lo + (b - lo) * c for b in bases]
    if name == "CosineAnnealingWarmupLR":
        c = cos_factor(t - W, T - W)
        return [warm(t, W) * b if t < W else lo + (b - lo) * c for b in bases]
    if name == "FlatAnnealingLR":
        F = int(T * kw.get("pct_start", 0.72))
        c = cos_factor(t - F, T - F)
        return [b if t < F else lo + (b - lo) * c for b in bases]
    if name == "FlatAnnealingWarmupLR":
        F = int((T - W) * kw.get("pct_start", 0.72))
        c = cos_factor(t - W - F, T - W - F)
        return [warm(t, W) * b if t < W else b if t < W + F else lo + (b - lo) * c for b in bases]
    if name == "LinearWarmupLR":
        return [(t + 1) / (W + 1) * b if t < W else (T - t) / (T - W) * b for b in bases]
    if name in ("MultiStepLR", "MultiStepWarmupLR"):
        ms = kw["milestones"]
        f = math.pow(kw.get("gamma", 0.1), sum(m <= t for m in ms))
        return [warm(t, W) * b if t < W else b * f for b in bases]
    if name in ("PolynomialLR", "PolynomialWarmupLR"):
        end, L = kw.get("end_lr", 0.0001), T - W
        p = 1.0 if L <= 0 else max(min(t - W, L) / L, 0.0)
        d = math.pow(1 - p, kw.get("power", 1.0))
        return [warm(t, W) * b if t < W else (b - end) * d + end for b in bases]
    if name == "StepLR":
        f = math.pow(kw.get("gamma", 0.1), t // kw.get("step_size", 1))
        return [b * f for b in bases]
    if name == "ExponentialLR":
        f = math.pow(kw.get("gamma", 1.0), t)
        return [b * f for b in bases]
    raise KeyError(name)
