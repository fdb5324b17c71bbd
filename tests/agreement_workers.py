"""Bodies of the cross-rank agreement tests (issue #8); each scenario runs on every rank of a real gloo world.

``suite`` runs many scenarios one after the other in the same processes (every refusal leaves the
process group usable, since every rank raised in the same sync), and returns per scenario what each
rank saw: the error type and message, how long the refusal took, lrs, steps and the hook's counters.
"""
import time
import warnings

import torch
import torch.distributed as dist

import colossal_sched as cs
from colossal_sched.checkpoint import restore
from distributed import mark
from workers import CountingCollectives, optimizer

TIMEOUT = 20.0  # the hook's collective timeout in these scenarios; every refusal must come well within it


def hook_for(sched, **kw):
    from hooks import LRSchedulerHook

    return LRSchedulerHook(sched, timeout=TIMEOUT, **kw)


def _outcome(fn):
    out = {"error": None, "type": None, "warnings": []}
    t0 = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out.update(fn() or {})
        except Exception as e:  # every refusal is recorded, with its type, on every rank
            out.update(error=str(e), type=type(e).__name__)
    out["seconds"] = time.monotonic() - t0
    out["warnings"] = [str(w.message) for w in caught if "source rank" in str(w.message)]
    return out


# ------------------------------------------------------------------ scenarios
def step_mismatch(rank, mode, equal_lrs):
    """Rank 1 asks for another step than the others: with equal lrs (warmup end vs cosine start) or different."""
    opt = optimizer()
    hook = hook_for(cs.CosineAnnealingWarmupLR(opt, total_steps=50, warmup_steps=5), on_divergence=mode)
    mine = (5 if equal_lrs else 9) if rank == 1 else 4
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hook.step(mine)
        except Exception as e:
            return {"error": str(e), "type": type(e).__name__, "fixes": hook.fixes,
                    "disagreements": hook.disagreements}
    before = [g["lr"] for g in opt.param_groups]
    with CountingCollectives() as counter:
        hook.step(mine)  # a repeat of the same call: nothing changes, no collective
        hook.step(hook.global_step)
    return {"global_step": hook.global_step, "last_epoch": hook.lr_scheduler.last_epoch,
            "lrs": [g["lr"] for g in opt.param_groups], "lrs_before_repeat": before,
            "repeat_calls": counter.calls, "fixes": hook.fixes, "warn_count": hook.warnings,
            "disagreements": hook.disagreements, "last": hook.last_disagreement,
            "caught": [str(w.message) for w in caught if "source rank" in str(w.message)],
            "categories": [w.category.__name__ for w in caught if "source rank" in str(w.message)]}


def persistent_offset(rank, world):
    """Rank 1's step counter runs one ahead all along: every sync fixes it, and nothing else goes wrong."""
    opt = optimizer()
    hook = hook_for(cs.CosineAnnealingWarmupLR(opt, total_steps=50, warmup_steps=5))
    held = []
    for n in range(6):
        hook.step(n + (rank == 1))
        held.append((hook.global_step, hook.lr_scheduler.last_epoch, [g["lr"] for g in opt.param_groups]))
    return {"held": held, "fixes": hook.fixes}


def skipped_call(rank, world, sync_every, skipper):
    """Every rank steps 0..8; ``skipper`` leaves out step 3 (a sync step for sync_every 1 and 3)."""
    hook = hook_for(cs.CosineAnnealingLR(optimizer(), 30), sync_every=sync_every)
    done = []
    for n in range(9):
        if rank == skipper and n == 3:
            continue
        hook.step(n)
        done.append(n)
    return {"done": done}


BUILDS = {
    "class": lambda opt, rank: cs.CosineAnnealingLR(opt, 40) if rank == 1 else cs.StepLR(opt, 40, step_size=5),
    "eta_min": lambda opt, rank: cs.CosineAnnealingLR(opt, 40, eta_min=1e-3 if rank == 1 else 0.0),
    "total_steps": lambda opt, rank: cs.CosineAnnealingLR(opt, 41 if rank == 1 else 40),
}


def different_schedule(rank, world, what, sync_every):
    if what == "base_lr":
        sched = cs.CosineAnnealingLR(optimizer(lr=0.2 if rank == 1 else 0.1), 40)
    else:
        sched = BUILDS[what](optimizer(), rank)
    hook = hook_for(sched, sync_every=sync_every)
    for n in range(6):
        hook.step(n)
    return {"step": hook.global_step}


def swapped_by_restore(rank, world):
    """After 3 good steps, rank 1 alone resumes a checkpoint of another schedule with use_checkpoint."""
    opt = optimizer()
    hook = hook_for(cs.CosineAnnealingLR(opt, 40))
    for n in range(3):
        hook.step(n)
    if rank == 1:
        other = cs.CosineAnnealingWarmupLR(optimizer(), 40, warmup_steps=4)
        other.step_to(3)
        restore(hook, other.state_dict(), on_mismatch="use_checkpoint")
    for n in range(3, 8):
        hook.step(n)
    return {"step": hook.global_step}


def late_group(rank, world, port):
    """Hooks built while torch.distributed is down connect at their first step: one whose first step is invalid
    on rank 1 only, then one whose schedules differ."""
    dist.destroy_process_group()
    bad_first = hook_for(cs.CosineAnnealingLR(optimizer(), 40))
    different = hook_for(cs.CosineAnnealingLR(optimizer(), 40 if rank == 0 else 30))
    dist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"tcp://127.0.0.1:{port}")
    return {"bad_first_step": _outcome(lambda: bad_first.step(-1 if rank == 1 else 0)),
            "different": _outcome(lambda: different.step(0))}


def duplicate_names(rank, world):
    names = ["decay", "decay"] if rank == 1 else ["decay", "no_decay"]
    hook_for(cs.CosineAnnealingLR(optimizer(names=names), 40))
    return {}


def huge_steps(rank, world):
    """Steps up to 2**62 travel exactly; past it every rank refuses before any collective."""
    hook = hook_for(cs.CosineAnnealingLR(optimizer(), 40), on_divergence="raise")
    hook.step(2**62 - 1)
    hook.step(2**62)
    held, refused = hook.global_step, None
    try:
        hook.step(2**62 + 1)
    except ValueError as e:
        refused = str(e)
    return {"global_step": held, "refused": refused, "last": hook.last_disagreement, "syncs": hook.lr_sync.syncs}


def bad_step_on_one_rank(rank, world):
    """Rank 1 passes a step that is refused (a float); its peers, at a valid step, must not wait for it."""
    hook = hook_for(cs.CosineAnnealingLR(optimizer(), 40))
    hook.step(0)
    hook.step(1.0 if rank == 1 else 1)
    return {}


def huge_step_mismatch(rank, world):
    """Two steps that round to the same float64 are still told apart."""
    hook = hook_for(cs.CosineAnnealingLR(optimizer(), 40), on_divergence="raise")
    hook.step(2**60 + (1 if rank == 1 else 0))
    return {}


def logged_disagreement(rank, world):
    """A fixed disagreement is counted on every rank and logged through log_fn on rank 0."""
    seen = []
    opt = optimizer()
    hook = hook_for(cs.CosineAnnealingLR(opt, 40), log_fn=lambda n, v: seen.append((n, v)))
    hook.step(1 if rank == 1 else 0)
    return {"logged": [v for _, v in seen if "sync/disagreements" in v], "fixes": hook.fixes,
            "disagreements": hook.disagreements, "last": hook.last_disagreement}


def replan_refused_by_one(rank, world):
    """A re-plan that one rank refuses is refused on every rank, and no rank's schedule changes."""
    hook = hook_for(cs.CosineAnnealingLR(optimizer(), 40))
    for n in range(5):
        hook.step(n)
    fp = hook.lr_scheduler.fingerprint()
    total = 3 if rank == 1 else 60  # rank 1 asks for a total before the current step
    try:
        hook.replan(total)
    except Exception as e:
        return {"error": str(e), "type": type(e).__name__, "unchanged": hook.lr_scheduler.fingerprint() == fp}
    return {"unchanged": hook.lr_scheduler.fingerprint() == fp}


def replan_fails_on_one(rank, world):
    """Rank 1's replan raises something other than a refusal (a RuntimeError): still refused on every rank."""
    hook = hook_for(cs.CosineAnnealingLR(optimizer(), 40))
    hook.step(0)
    fp = hook.lr_scheduler.fingerprint()
    if rank == 1:
        def broken(total_steps, at_step=None):
            raise RuntimeError("replan backend unavailable")
        hook.lr_scheduler.replan = broken
    try:
        hook.replan(60)
    except Exception as e:
        return {"error": str(e), "type": type(e).__name__, "unchanged": hook.lr_scheduler.fingerprint() == fp}
    return {"unchanged": hook.lr_scheduler.fingerprint() == fp}


def _stage_names(rank):
    """Two pipeline stages (even ranks hold the first, odd the second) with no group name in common."""
    return ["embed", "block0"] if rank % 2 == 0 else ["block1", "head"]


def pipeline_stages(rank, world):
    """Stages holding different named groups stay legal; an odd rank at another step is fixed to the source's
    step with its own groups' closed-form lrs (the source does not hold them)."""
    opt = optimizer(names=_stage_names(rank))
    sched = cs.CosineAnnealingWarmupLR(opt, total_steps=50, warmup_steps=5)
    hook = hook_for(sched)
    hook.step(9 if rank == 1 else 4)  # rank 1's counter runs 5 ahead from the first sync
    return {"global_step": hook.global_step, "last_epoch": sched.last_epoch, "lrs": [g["lr"] for g in opt.param_groups],
            "expected": sched.lr_at(4), "fixes": hook.fixes, "layout": hook.lr_sync.layout,
            "last": hook.last_disagreement}


def pipeline_base_mismatch(rank, world):
    """The last rank holds the second stage's 'head' group with another base lr than the first rank that holds it."""
    opt = optimizer(names=_stage_names(rank))
    if rank == world - 1 and world > 2:
        opt.param_groups[1]["lr"] = 0.5
    hook_for(cs.CosineAnnealingLR(opt, 40))
    return {}


def groups_changed(rank, world):
    """Rank 1 adds a param group after the hook connected: its scheduler cannot step, and no peer waits for it."""
    opt = optimizer()
    hook = hook_for(cs.CosineAnnealingLR(opt, 40))
    hook.step(0)
    if rank == 1:
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1})
    hook.step(1)
    return {}


class _Unequal:
    """A value whose comparison raises (what a hyperparameter swapped after construction might be)."""

    def __eq__(self, other):
        raise RuntimeError("this value cannot be compared")

    __hash__ = None


def unreadable(rank, world, what):
    """Rank 1's row for the sync cannot be written: its scheduler holds one base lr more than it has param
    groups (so it cannot step, and the refusal's own row fails too), or its fingerprint cannot be computed.
    The failure reaches every rank in the sync instead of raising on rank 1 alone."""
    hook = hook_for(cs.CosineAnnealingLR(optimizer(), 40))
    hook.step(0)
    if rank == 1 and what == "base_lrs":
        hook.lr_scheduler.base_lrs.append(0.5)
    if rank == 1 and what == "fingerprint":
        hook.lr_scheduler.eta_min = _Unequal()
    hook.step(1)
    return {}


def _named(lrs_by_name):
    """An SGD optimizer whose groups are named, in the given order, each with its own lr."""
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr, "name": name} for name, lr in lrs_by_name]
    return torch.optim.SGD(groups, lr=0.1, momentum=0.9)


def swapped_order(rank, world):
    """Rank 1 holds the same named groups in the other order: matched by name, synced without a false alarm,
    and fixed by name when its counter runs ahead."""
    opt = _named([("a", 0.1), ("b", 0.2)][:: -1 if rank == 1 else 1])
    hook = hook_for(cs.OneCycleLR(opt, 40))  # lrs and momenta, both mapped by name
    for n in range(3):
        hook.step(n)
    quiet = hook.disagreements
    sched = cs.OneCycleLR(opt, 40)
    hook = hook_for(sched)  # a new hook: rank 1's counter runs one ahead from its first sync
    hook.step(5 + (rank == 1))
    return {"quiet": quiet, "fixes": hook.fixes, "global_step": hook.global_step,
            "lrs": {g["name"]: (g["lr"], g["momentum"]) for g in opt.param_groups},
            "expected": {g["name"]: v for g, v in zip(opt.param_groups, zip(sched.lr_at(5), sched.momentum_at(5)))}}


def reference_invalid(rank, world, value, mode):
    """The value every fixed rank would adopt is not a valid lr: the source's (``value`` written into its
    optimizer before the first sync), or, with pipeline stages (world > 2), the 'x' group's reference
    holder's (rank 1; the source does not hold 'x'). Refused on every rank, whatever on_divergence."""
    stages = world > 2
    opt = _named([("a", 0.1)] if stages and rank == 0 else [("x", 0.3)] if stages else [("a", 0.1), ("b", 0.2)])
    hook = hook_for(cs.CosineAnnealingLR(opt, 40), on_divergence=mode)
    if rank == (1 if stages else 0):
        opt.param_groups[0]["lr"] = value
    hook.step(0)  # the step the scheduler holds: the optimizer's values are read as they are
    return {"lrs": [g["lr"] for g in opt.param_groups]}


def fingerprint_override(rank, world, value):
    """fingerprint() overridden (a subclass's own hash): every rank returns ``value`` (a negative int64 is
    carried), but rank 1 returns 2**63 from step 2 on, which a row cannot carry: refused on every rank."""
    hook = hook_for(cs.CosineAnnealingLR(optimizer(), 40))
    hook.lr_scheduler.fingerprint = lambda: value
    hook.step(0)
    hook.step(1)
    if rank == 1:
        hook.lr_scheduler.fingerprint = lambda: 2**63
    hook.step(2)
    return {}


def log_fn_fails(rank, world, strict, bad_step):
    """Rank 0's log_fn raises at step 1 (a logger not set up): rank 0 warns (``strict``: under warnings as
    errors, where the warning cannot be shown), and every rank raises at step 2; ``bad_step``: rank 1
    also passes an invalid step there, and both refusals are named."""
    def log_fn(step, values):
        if step == 1:
            raise KeyError("run not initialised")

    hook = hook_for(cs.CosineAnnealingLR(optimizer(), 40), log_fn=log_fn)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("error" if strict else "always")
        hook.step(0)
        hook.step(1)
    warned = [str(w.message) for w in caught if "log_fn" in str(w.message)]
    try:
        hook.step(-2 if bad_step and rank == 1 else 2)
    except Exception as e:
        return {"error": str(e), "type": type(e).__name__, "warned": warned}
    return {"warned": warned}


def warn_is_error(rank, world):
    """``on_divergence="warn"`` where rank 1 runs with ``-W error``: its warning would raise on it alone, so
    every rank raises instead."""
    with warnings.catch_warnings():
        if rank == 1:
            warnings.simplefilter("error")
        hook = hook_for(cs.CosineAnnealingLR(optimizer(), 40), on_divergence="warn")
        hook.step(2 if rank == 1 else 1)
    return {}


def lambda_differs(rank, world):
    """LambdaLR's functions are not in the fingerprint: rank 1's other function is caught by the lr check."""
    opt = optimizer()
    sched = cs.LambdaLR(opt, 40, lr_lambda=(lambda t: 0.5**t) if rank == 1 else (lambda t: 0.9**t))
    hook = hook_for(sched)
    hook.step(0)
    hook.step(3)
    return {"lrs": [g["lr"] for g in opt.param_groups], "fixes": hook.fixes, "last": hook.last_disagreement}


def _update(opt):
    """One optimizer update with every gradient 1; how far each group's parameter moved."""
    for g in opt.param_groups:
        for q in g["params"]:
            q.grad = torch.ones_like(q)
    before = [g["params"][0].detach().clone() for g in opt.param_groups]
    opt.step()
    return [float((b - g["params"][0].detach())[0]) for b, g in zip(before, opt.param_groups)]


def overlap_fix(rank, world):
    """overlap=True: hook.step starts the sync and returns this rank's lrs; the optimizer's step settles it first,
    so rank 1 (its counter 5 ahead) runs every update with the source's lr."""
    opt = optimizer()
    for g in opt.param_groups:
        g["momentum"] = 0.0  # plain SGD: each update moves a parameter by exactly -lr
    hook = hook_for(cs.CosineAnnealingWarmupLR(opt, total_steps=50, warmup_steps=5), overlap=True)
    returned, used = [], []
    for n in range(3):
        returned.append(hook.step(n + 5 * (rank == 1)))
        used.append(_update(opt))
    return {"returned": returned, "used": used, "global_step": hook.global_step, "fixes": hook.fixes,
            "syncs": hook.lr_sync.syncs, "expected": [hook.lr_scheduler.lr_at(n) for n in range(3)]}


def overlap_skip(rank, world):
    """overlap=True and rank 1 skips step 2: every rank's optimizer.step raises the sequence error."""
    opt = optimizer()
    hook = hook_for(cs.CosineAnnealingLR(opt, 30), overlap=True)
    for n in range(5):
        if rank == 1 and n == 2:
            continue
        hook.step(n)
        _update(opt)
    return {}


def options_differ(rank, world, option):
    """Rank 1's hook is configured with another on_divergence or sync_every than the source's."""
    kw = {"on_divergence": "raise"} if option == "on_divergence" else {"sync_every": 2}
    hook_for(cs.CosineAnnealingLR(optimizer(), 40), **(kw if rank == 1 else {}))
    return {}


def warn_filtered(rank, world, when):
    """Rank 1 turns the divergence warning into an error by a message filter: set before the hook is built,
    after it, or one that only the real message matches (its lr), which is refused at the next sync."""
    with warnings.catch_warnings():
        pattern = r"rank 1: step 2 with lr \[0\.0[1-9]" if when == "exact" else ".*differs from source"
        if rank == 1 and when == "before":
            warnings.filterwarnings("error", message=pattern)
        hook = hook_for(cs.CosineAnnealingWarmupLR(optimizer(), total_steps=40, warmup_steps=10), on_divergence="warn")
        if rank == 1 and when != "before":
            warnings.filterwarnings("error", message=pattern)
        hook.step(2 if rank == 1 else 1)
        hook.step(3 if rank == 1 else 2)
    return {}


def pipeline_holder_reference(rank, world):
    """The last rank's 'head' group has another lr function than the first rank holding it (rank 1): it adopts
    rank 1's values, so every holder of the group ends with the same lr."""
    opt = optimizer(names=_stage_names(rank))
    last = rank == world - 1 and world > 2
    sched = cs.LambdaLR(opt, 40, lr_lambda=[lambda t: 0.9**t, (lambda t: 0.5**t) if last else (lambda t: 0.8**t)])
    hook = hook_for(sched)
    hook.step(0)
    hook.step(3)
    return {"lrs": dict(zip(_stage_names(rank), [g["lr"] for g in opt.param_groups])), "fixes": hook.fixes,
            "last": hook.last_disagreement}


def str_equal_names(rank, world, names):
    hook_for(cs.CosineAnnealingLR(optimizer(names=names), 40))
    return {}


def sync_every_offset(rank, world):
    """sync_every=3, rank 1's counter one ahead from the start, an all_reduce every iteration (a data-parallel
    job): the syncs still pair (every third call), rank 1 is fixed at each, and nothing times out."""
    opt = optimizer()
    hook = hook_for(cs.CosineAnnealingLR(opt, 40), sync_every=3)
    held = []
    for n in range(9):
        hook.step(n + (rank == 1))
        held.append((hook.global_step, [g["lr"] for g in opt.param_groups]))
        dist.all_reduce(torch.ones(1))
    return {"held": held, "fixes": hook.fixes, "syncs": hook.lr_sync.syncs}


def replan_differs(rank, world):
    """Ranks re-plan to different totals: ScheduleMismatchError on every rank, and no rank keeps its re-plan."""
    hook = hook_for(cs.CosineAnnealingLR(optimizer(), 40))
    for n in range(5):
        hook.step(n)
    fp = hook.lr_scheduler.fingerprint()
    try:
        hook.replan(70 if rank == 0 else 80)
    except Exception as e:
        return {"error": str(e), "type": type(e).__name__, "unchanged": hook.lr_scheduler.fingerprint() == fp}
    return {"unchanged": hook.lr_scheduler.fingerprint() == fp}


def behind_one(rank, world):
    """Rank 1's counter runs one behind from the start, with an all_reduce every iteration: its next step equals
    the step a fix left it holding, and is still its next update (fixed at every sync, nothing times out)."""
    opt = optimizer()
    hook = hook_for(cs.CosineAnnealingLR(opt, 40))
    held = []
    for n in range(1, 7):
        hook.step(n - (rank == 1))
        held.append((hook.global_step, hook.lr_scheduler.last_epoch, [g["lr"] for g in opt.param_groups]))
        dist.all_reduce(torch.ones(1))
    return {"held": held, "fixes": hook.fixes, "syncs": hook.lr_sync.syncs}


def replan_while_fixed(rank, world):
    """Rank 1 runs one ahead and is fixed at every sync; every rank re-plans, then training goes on."""
    opt = optimizer()
    hook = hook_for(cs.CosineAnnealingLR(opt, 40))
    for n in range(4):
        hook.step(n + (rank == 1))
    hook.replan(80)
    for n in range(4, 7):
        hook.step(n + (rank == 1))
    return {"global_step": hook.global_step, "lrs": [g["lr"] for g in opt.param_groups], "total": hook.lr_scheduler.total_steps}


SCENARIOS = {
    "step_equal_fix": lambda r, w: step_mismatch(r, "fix", True),
    "step_equal_warn": lambda r, w: step_mismatch(r, "warn", True),
    "step_equal_raise": lambda r, w: step_mismatch(r, "raise", True),
    "step_differ_fix": lambda r, w: step_mismatch(r, "fix", False),
    "step_differ_warn": lambda r, w: step_mismatch(r, "warn", False),
    "step_differ_raise": lambda r, w: step_mismatch(r, "raise", False),
    "persistent_offset": persistent_offset,
    "skip_every1": lambda r, w: skipped_call(r, w, 1, 1),
    "skip_every3": lambda r, w: skipped_call(r, w, 3, 1),
    "source_skips": lambda r, w: skipped_call(r, w, 1, 0),
    **{f"schedule_{what}_every{k}": (lambda r, w, what=what, k=k: different_schedule(r, w, what, k))
       for what in ("class", "eta_min", "total_steps", "base_lr") for k in (1, 3)},
    "swapped_by_restore": swapped_by_restore,
    "duplicate_names": duplicate_names,
    "huge_steps": huge_steps,
    "huge_step_mismatch": huge_step_mismatch,
    "bad_step_on_one_rank": bad_step_on_one_rank,
    "logged_disagreement": logged_disagreement,
    "replan_refused_by_one": replan_refused_by_one,
    "pipeline_stages": pipeline_stages,
    "pipeline_base_mismatch": pipeline_base_mismatch,
    "groups_changed": groups_changed,
    "warn_is_error": warn_is_error,
    "lambda_differs": lambda_differs,
    "unreadable_base_lrs": lambda r, w: unreadable(r, w, "base_lrs"),
    "unreadable_fingerprint": lambda r, w: unreadable(r, w, "fingerprint"),
    "swapped_order": swapped_order,
    **{f"reference_{v}_{mode}": (lambda r, w, v=v, mode=mode: reference_invalid(r, w, float(v), mode))
       for v in ("nan", "inf") for mode in ("fix", "warn")},
    "fingerprint_positive": lambda r, w: fingerprint_override(r, w, 12345),
    "fingerprint_negative": lambda r, w: fingerprint_override(r, w, -(2**63)),
    **{f"log_fn_fails_{name}": (lambda r, w, a=args: log_fn_fails(r, w, *a))
       for name, args in {"plain": (False, False), "strict": (True, False), "with_bad_step": (False, True)}.items()},
    "replan_fails_on_one": replan_fails_on_one,
    "overlap_fix": overlap_fix,
    "overlap_skip": overlap_skip,
    "options_on_divergence": lambda r, w: options_differ(r, w, "on_divergence"),
    "options_sync_every": lambda r, w: options_differ(r, w, "sync_every"),
    **{f"warn_filtered_{when}": (lambda r, w, when=when: warn_filtered(r, w, when)) for when in ("before", "after", "exact")},
    "pipeline_holder_reference": pipeline_holder_reference,
    "names_int_and_str": lambda r, w: str_equal_names(r, w, [1, "1"]),
    "names_like_unnamed_key": lambda r, w: str_equal_names(r, w, [None, "#0"]),
    "sync_every_offset": sync_every_offset,
    "replan_differs": replan_differs,
    "behind_one": behind_one,
    "replan_while_fixed": replan_while_fixed,
}


def suite(rank, world, names, late_port=None):
    """Run ``names`` in order on every rank; the late-process-group scenario last (it re-creates the group)."""
    out = {}
    for name in names:
        mark(name)
        out[name] = _outcome(lambda name=name: SCENARIOS[name](rank, world))
    if late_port is not None:
        mark("late_group")
        out["late_group"] = late_group(rank, world, late_port)
    return out
