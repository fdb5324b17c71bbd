"""``colossal-sched``: list, preview and plot schedules; inspect the scheduler state in checkpoints."""
from __future__ import annotations

import argparse
import ast
import inspect as pyinspect
import json
import os
import sys
from typing import Any, Sequence

import numpy as np

from .builder import SCHEDULERS
from .cli_find_lr import pass_on, register as register_find_lr
from .clock import UNITS
from .errors import UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage block
        raise UsageError(message)


def parse_params(items: Sequence[str], what: str = "--param") -> dict[str, Any]:
    """``["k=v", ...]`` as a dict, each value a Python literal where it parses as one, else the string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} must be KEY=VALUE, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _build(name: str, total_steps: int, lr: float, params: dict[str, Any], unit: str | None = None):
    from .preview import preview_scheduler

    params = {**params, "unit": unit} if unit else params
    if name not in SCHEDULERS:
        raise UsageError(f"unknown scheduler {name!r}; choose from {', '.join(sorted(SCHEDULERS))}")
    if not SCHEDULERS[name].rebuildable:
        raise UsageError(f"{name} is defined by a Python function and cannot be built from the command line")
    try:
        return preview_scheduler(name, total_steps, lr, **params)
    except (ValueError, TypeError) as e:
        raise UsageError(f"{name}: {e}") from None


# ------------------------------------------------------------------- commands
#: each scheduler's lr in plain text (t: steps taken, clamped to T = total_steps; W = warmup_steps; base: initial lr)
FORMULAS = {
    "CosineAnnealingLR": "eta_min + (base - eta_min)*(1 + cos(pi*t/T))/2",
    "CosineAnnealingWarmupLR": "(t+1)/W*base for t < W, then eta_min + (base - eta_min)*(1 + cos(pi*(t-W)/(T-W)))/2",
    "FlatAnnealingLR": "base for t < F = floor(T*pct_start), then eta_min + (base - eta_min)*(1 + cos(pi*(t-F)/(T-F)))/2",
    "FlatAnnealingWarmupLR": "(t+1)/W*base for t < W, base until W+F (F = floor((T-W)*pct_start)), "
                             "then cosine from base to eta_min over T-W-F steps",
    "LinearWarmupLR": "(t+1)/(W+1)*base for t < W, then (T-t)/(T-W)*base",
    "MultiStepLR": "base*gamma^(number of milestones <= t)",
    "MultiStepWarmupLR": "(t+1)/W*base for t < W, then base*gamma^(number of milestones <= t)",
    "OneCycleLR": "anneal ('cos' or 'linear') from base/div_factor up to base over pct_start*T steps, then down to "
                  "base/div_factor/final_div_factor; momentum from max_momentum to base_momentum and back",
    "PolynomialLR": "(base - end_lr)*(1 - t/T)^power + end_lr",
    "PolynomialWarmupLR": "(t+1)/W*base for t < W, then (base - end_lr)*(1 - (t-W)/(T-W))^power + end_lr",
    "LambdaLR": "base*lr_lambda(t)",
    "MultiplicativeLR": "lr(t-1)*lr_lambda(t) = base*lr_lambda(1)*...*lr_lambda(t)",
    "StepLR": "base*gamma^floor(t/step_size)", "ExponentialLR": "base*gamma^t",
    "WarmupStableDecayLR": "(t+1)/W*base for t < W, base for S = T-W-D steps, then decay_style ('linear', 'cosine', "
                           "'1-sqrt') from base to min_lr over D steps",
    "InverseSqrtLR": "(t+1)/W*base for t < W, then max(min_lr, base*sqrt(tau/(t-W+tau))), tau = timescale or max(W, 1)",
    "CosineAnnealingWarmRestartsLR": "cycles of L_i = floor(first_cycle_steps*cycle_mult^i) steps, each a warmup of W "
                                     "then a cosine from base*cycle_decay^i to eta_min",
    "ConstantWarmupLR": "(t+1)/W*base for t < W, then base",
    "ComposedLR": "the given phases one after another: phase i from boundaries[i-1] to boundaries[i] (the last to T)",
}  # fmt: skip


def parameters(cls: type) -> list[str]:
    """``name`` or ``name=default`` for each argument after ``optimizer, total_steps`` that ``cls`` accepts,
    including the keyword-only hyperparameters it takes through ``**kwargs`` (e.g. FlatAnnealingLR's ``eta_min``)."""
    params = list(pyinspect.signature(cls.__init__).parameters.values())[3:]
    out = [p.name if p.default is p.empty else f"{p.name}={p.default!r}" for p in params if p.kind is not p.VAR_KEYWORD]
    named = {p.name for p in params}
    configure = getattr(cls, "_configure", None)
    defaults = pyinspect.signature(configure).parameters if callable(configure) else {}
    extra = [f"{n}={defaults[n].default!r}" if n in defaults and defaults[n].default is not defaults[n].empty else n
             for n in getattr(cls, "hyperparams", ()) if n not in named and n != "total_steps"]
    if getattr(cls, "__name__", "") == "OneCycleLR":
        extra += ["epochs=None", "steps_per_epoch=None"]  # total_steps=None: epochs * steps_per_epoch, as torch's
    return out + (["*", *extra] if extra else [])


def formula(cls: type) -> str:
    """A one-line plain-text formula of ``cls``'s lr."""
    if cls.__name__ in FORMULAS:
        return FORMULAS[cls.__name__]
    text = ((cls.__doc__ or "").strip().splitlines() or [""])[0]
    for markup in (":math:", ":class:", "``", "`", "\\mathrm", "\\"):
        text = text.replace(markup, "")
    return text.rstrip(":")


def cmd_list(args: argparse.Namespace) -> int:
    for name, cls in SCHEDULERS.items():
        origin = "  [colossalai.nn.lr_scheduler]" if cls.colossalai else ""
        print(f"{name}(optimizer, total_steps, {', '.join(parameters(cls))}){origin}\n    lr(t) = {formula(cls)}")
    return 0


def _spec(text: str, args: argparse.Namespace) -> tuple[str, Any]:
    """``NAME`` or ``NAME:key=value,key=value`` for --compare."""
    name, _, rest = text.partition(":")
    params = parse_params([p for p in _split_top_level(rest) if p], "--compare")
    return f"{name}({rest})" if rest else name, _build(name, args.total_steps, args.lr, params, args.unit)


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets, so ``milestones=[400,700],gamma=0.3`` gives two items."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "[({"
        depth -= ch in "])}"
        if ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return items


def _replan(s: Any, replans: Sequence[tuple[int, int]]) -> Any:
    """Apply ``--replan STEP:TOTAL`` options in order."""
    for at, total in replans:
        try:
            s.replan(total, at_step=at)
        except (ValueError, TypeError) as e:
            raise UsageError(f"--replan {at}:{total}: {e}") from None
    return s


def _plotted(args: argparse.Namespace) -> tuple[str, Any]:
    """NAME with --param, or NAME a YAML/JSON config file (as for ``show``, e.g. a ComposedLR spec)."""
    if args.name.endswith((".yaml", ".yml", ".json")):
        name, total, lr, config = _config_schedule(args.name, args.lr)
        args.lr = lr
        if args.total_steps is None:
            args.total_steps = total
        return os.path.basename(args.name), _build(name, total, lr, config, args.unit)
    if args.total_steps is None:
        raise UsageError("the following arguments are required: --total-steps (or give a CONFIG.yaml as NAME)")
    label = f"{args.name}({','.join(args.param)})" if args.param else args.name
    return label, _build(args.name, args.total_steps, args.lr, parse_params(args.param), args.unit)


def _axis(s: Any, plural: bool = False) -> str:
    """What the x axis counts: steps (updates), samples or tokens."""
    return ("steps" if plural else "step") if s.unit == "updates" else s.unit


def cmd_plot(args: argparse.Namespace) -> int:
    from .preview import metric_note, sample_steps

    if args.out:
        _check_writable(args.out)
    curves = [_plotted(args)]
    curves += [_spec(c, args) for c in args.compare]
    if args.replan:  # the re-planned schedule beside the original
        label = f"{curves[0][0]} re-planned " + ", ".join(f"at {a} to {t}" for a, t in args.replan)
        curves.insert(1, (label, _replan(_plotted(args)[1], args.replan)))
        args.total_steps = max(args.total_steps, *(t for _, t in args.replan))
    marks = sorted({step for _, s in curves for _, step in s.phase_boundaries()})
    steps = sample_steps(args.total_steps, args.points, marks)
    tables = [(label, s.lr_table(steps)[:, 0], s.momentum_table(steps)) for label, s in curves]
    if args.out:
        _png(args, steps, tables, curves)
        print(f"wrote {args.out} ({args.size[0]}x{args.size[1]} px, {len(steps)} points over {args.total_steps} "
              f"{_axis(curves[0][1], plural=True)})")
    else:
        print(_terminal_plot(steps, tables, args.total_steps))
    print(metric_note(curves[0][1]), end="")
    return 0


def _png(args, steps, tables, curves) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--out needs matplotlib: pip install 'colossal_sched[plot]'") from None
    fig = figure(steps, tables, curves, args.total_steps, args.lr, args.size)
    try:
        fig.savefig(args.out, dpi=100)
    except (OSError, ValueError) as e:  # unwritable path, or a suffix matplotlib has no writer for
        raise UsageError(f"--out: cannot write {args.out!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    finally:
        plt.close(fig)


def _check_writable(path: str) -> None:
    """Refuse an ``--out`` that cannot be written before any work is done."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"--out: {path!r} is a directory; give a file name such as lr.png")
    if not os.path.isdir(folder):
        raise UsageError(f"--out: cannot write {path!r}: directory {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"--out: cannot write {path!r}: directory {folder!r} is not writable")


def figure(steps, tables, curves, total_steps: int, lr: float, size: tuple[int, int]) -> Any:
    """The matplotlib figure of ``plot --out``: one colour per schedule (its lr solid, its momentum
    dashed, its boundaries dotted), the legend below the axes so that it covers no curve or label."""
    import matplotlib.pyplot as plt

    width, height = size
    fig, ax = plt.subplots(figsize=(width / 100, height / 100), dpi=100, layout="constrained")
    colours = [f"C{k % 10}" for k in range(len(tables))]
    handles = []
    for (label, lrs, _), colour in zip(tables, colours):
        handles += ax.plot(steps, lrs, color=colour, label=f"{label} lr")
    ax.set_xlabel(_axis(curves[0][1]))
    ax.set_ylabel("learning rate")
    if any(m is not None for _, _, m in tables):
        ax2 = ax.twinx()
        for (label, _, mom), colour in zip(tables, colours):
            if mom is not None:
                handles += ax2.plot(steps, mom[:, 0], color=colour, linestyle="--", label=f"{label} momentum")
        ax2.set_ylabel("momentum")
        low2, high2 = ax2.get_ylim()
        ax2.set_ylim(low2, high2 + 0.2 * (high2 - low2))  # the same headroom as the lr axis
    marks: dict[int, list[tuple[str, str]]] = {}
    for (_, s), colour in zip(curves, colours):
        for what, step in s.phase_boundaries()[:-1]:
            if (what, colour) not in marks.setdefault(step, []):
                marks[step].append((what, colour))
    low, high = ax.get_ylim()
    top = high + 0.2 * (high - low)  # headroom above the data for the boundary labels
    ax.set_ylim(low, top)
    for step, items in sorted(marks.items()):
        for what, colour in items:
            ax.axvline(step, color=colour, linestyle=":", linewidth=0.8)
        ax.annotate(" / ".join(dict.fromkeys(w for w, _ in items)), (step, top), fontsize=7, rotation=90, va="top",
                    ha="right", color=items[0][1] if len(items) == 1 else "grey")
    fig.legend(handles=handles, loc="outside lower center", ncol=min(2, len(handles)), fontsize=8, frameon=False)
    what = curves[0][0] if len(curves) == 1 else f"{len(curves)} schedules"
    ax.set_title(f"{what} over {total_steps} {_axis(curves[0][1], plural=True)}, lr {lr:g}")
    return fig


def _terminal_plot(steps: np.ndarray, tables, total: int, width: int = 72, height: int = 16) -> str:
    marks = "*o+x#@"
    top = max(float(t.max()) for _, t, _ in tables) or 1.0
    grid = [[" "] * width for _ in range(height)]
    cols = np.minimum((steps / max(total, 1) * (width - 1)).round().astype(int), width - 1)
    for k, (_, lrs, _) in enumerate(tables):
        rows = (height - 1 - np.round(lrs / top * (height - 1))).astype(int)
        for c, r in zip(cols, rows):
            grid[r][c] = marks[k % len(marks)]
    lines = [f"{top:10.3e} |" + "".join(grid[0])] + ["           |" + "".join(row) for row in grid[1:-1]]
    lines += [f"{0.0:10.3e} |" + "".join(grid[-1]), "           +" + "-" * width,
              f"            0{'step'.center(width - 2 - len(str(total)))}{total}"]
    lines += [f"  {marks[k % len(marks)]} {label}" for k, (label, _, _) in enumerate(tables)]
    return "\n".join(lines)


def _load_config(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        raise UsageError(f"CONFIG: no such file {path!r}")
    with open(path) as f:
        text = f.read()
    is_yaml = path.endswith((".yaml", ".yml"))
    if is_yaml:
        try:
            import yaml
        except ImportError:
            raise UsageError("CONFIG: reading YAML needs pyyaml: pip install pyyaml (or give a .json config)") from None
    try:
        data = yaml.safe_load(text) if is_yaml else json.loads(text)
    except Exception as e:
        raise UsageError(f"CONFIG: cannot parse {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UsageError("CONFIG must hold a mapping")
    return data


def _config_schedule(path: str, default_lr: float) -> tuple[str, Any, float, dict[str, Any]]:
    """``(type, total_steps, lr, other keys)`` of a ColossalAI-style config file."""
    data = _load_config(path)
    config = dict(data.get("lr_scheduler", data))
    lr = float(config.pop("lr", data.get("lr", default_lr)))
    if "type" not in config or "total_steps" not in config:
        raise UsageError("CONFIG needs 'type' and 'total_steps' (at the top level or under 'lr_scheduler')")
    return config.pop("type"), config.pop("total_steps"), lr, config


def cmd_show(args: argparse.Namespace) -> int:
    from .preview import key_points, metric_note

    name, total, lr, config = _config_schedule(args.config, args.lr)
    s = _replan(_build(name, total, lr, config, args.unit), args.replan)
    print(f"{name}  total_steps={total}  base lr={lr}  " + "  ".join(f"{k}={v}" for k, v in config.items())
          + "".join(f"  re-planned at {a} to {t}" for a, t in args.replan))
    print(f"{'point':<18}{_axis(s):>10}{'lr':>16}")
    for what, step, value in key_points(s):
        print(f"{what:<18}{step:>10}{value:>16.6e}")
    print(metric_note(s), end="")
    return 0


def _newest_step_dir(path: str) -> str:
    """The newest complete ``step_XXXXXXXX`` checkpoint in ``path`` (``path`` itself if it holds none);
    a CheckpointError naming the newest one's fault when step directories exist but none is complete."""
    import logging

    from .checkpoint import STEP_DIR, CheckpointError, latest_checkpoint
    from .safe_reader import missing_files, read_metadata_file

    steps = sorted((int(m.group(1)), n) for n in os.listdir(path) if (m := STEP_DIR.fullmatch(n)))
    if not steps:
        return path
    logger = logging.getLogger("colossal_sched")
    disabled, logger.disabled = logger.disabled, True  # skipped directories are reported here, on one line
    try:
        newest = latest_checkpoint(path)
    finally:
        logger.disabled = disabled
    if newest is None:
        last = os.path.join(path, steps[-1][1])
        try:
            why = "a symbolic link" if os.path.islink(last) else f"missing {missing_files(last, read_metadata_file(last))}"
        except CheckpointError as e:
            why = str(e)
        raise CheckpointError(f"{path}: none of its {len(steps)} step directories is a complete checkpoint "
                              f"(newest {steps[-1][1]}: {why})")
    return newest


def cmd_inspect(args: argparse.Namespace) -> int:
    from .base import ClosedFormLR
    from .checkpoint import BOOSTER_FILE, CheckpointError, read_booster_state, read_dcp_state
    from .resume_choice import describe
    from .state import read_state

    path = args.checkpoint
    if not os.path.exists(path):
        raise UsageError(f"CKPT_DIR: no such file or directory {path!r}")
    try:
        if os.path.isdir(path) and not os.path.lexists(os.path.join(path, ".metadata")):
            path = _newest_step_dir(path)
        if os.path.lexists(os.path.join(path, ".metadata")):
            kind, saved = "torch.distributed.checkpoint", read_state(read_dcp_state(path, args.key))
        elif os.path.isdir(path) and not os.path.exists(os.path.join(path, BOOSTER_FILE)):
            candidates = [f for f in os.listdir(path) if "lr_scheduler" in f or "scheduler" in f]
            if not candidates:
                raise CheckpointError(f"{path}: no DCP .metadata, no {BOOSTER_FILE} and no lr_scheduler file")
            kind, saved = "ColossalAI booster.save_lr_scheduler", read_booster_state(os.path.join(path, candidates[0]))
        else:
            saved = read_booster_state(path)
            kind = _file_kind(path, saved)
    except CheckpointError as e:
        raise UsageError(str(e)) from None
    print(f"checkpoint: {path}  ({kind})")
    state = saved.scheduler_state()
    if not saved.native:
        kind = state.get("after_scheduler_type", "")
        print(f"scheduler: torch/colossalai state{' (two-stage, then ' + kind + ')' if kind else ''}, keys {sorted(state)}")
        print(f"step: {saved.step}  base lrs: {state.get('base_lrs')}  last lr: {state.get('_last_lr')}")
        return 0
    step = saved.global_step if saved.global_step is not None else saved.step
    hp = saved.hyperparams
    print(f"schedule: {saved.cls}(" + ", ".join(f"{k}={v!r}" for k, v in hp.items()) + ")")
    print(f"base lrs: {state['base_lrs']}")
    print(f"step: {step} (updates done)")
    if saved.clock is not None:
        print("clock: " + ", ".join(f"{k} {v}" for k, v in saved.clock.items()))
    if saved.resumed is not None:
        print(describe(saved.resumed_record()))
    total = hp["total_steps"]
    for at, new_total in state.get("replans") or []:
        print(f"re-planned at step {at} to end at {new_total}")
        total = new_total
    try:
        sched = ClosedFormLR.from_state(saved)
        print(f"next update lr: {sched.lr_at(step)}")
        marks = [f"{what} {at}" for what, at in sched.phase_boundaries()]
        if marks:
            print(f"phases: {', '.join(marks)}")
    except CheckpointError as e:
        print(f"next update lr: {state.get('last_lr')} ({e})")
    print(f"steps remaining: {max(total - step, 0)} of {total}")
    return 0


def _file_kind(path: str, saved: Any) -> str:
    """How ``inspect`` names a checkpoint file (or a Booster directory) by what it holds."""
    from .checkpoint import BOOSTER_FILE

    if os.path.isdir(path) or path.endswith(".json"):
        where = "ColossalAI Booster checkpoint" if os.path.isdir(path) or path.endswith(BOOSTER_FILE) else "JSON file"
        return f"{where} (colossal_sched JSON)"
    if saved.native:
        return "torch.save file (colossal_sched scheduler state)"
    return "torch.save file (torch/ColossalAI scheduler state_dict, e.g. booster.save_lr_scheduler)"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="colossal-sched", description=__doc__)
    sub = p.add_subparsers(dest="command", parser_class=_Parser, required=True)
    sub.add_parser("list", help="every scheduler with its parameters and defaults").set_defaults(fn=cmd_list)
    plot = sub.add_parser("plot", help="plot a schedule (PNG with --out, else in the terminal)")
    plot.add_argument("name", metavar="NAME", help="a scheduler name, or a YAML/JSON config as for show")
    plot.add_argument("--total-steps", type=_positive_int, default=None, help="required with a scheduler name")
    plot.add_argument("--lr", type=_positive_float, default=1.0)
    plot.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    plot.add_argument("--compare", action="append", default=[], metavar="NAME[:KEY=VALUE,...]")
    plot.add_argument("--out", default=None, metavar="FILE.png")
    plot.add_argument("--unit", choices=UNITS, default=None, help="what the lengths count (default updates; or the config's)")
    plot.add_argument("--size", type=_size, default=(1000, 600), metavar="WxH", help="PNG size in pixels")
    plot.add_argument("--points", type=_positive_int, default=4000, help="samples drawn per curve")
    plot.add_argument("--replan", type=parse_replan, action="append", default=[], metavar="STEP:TOTAL",
                      help="also draw the schedule re-planned at STEP to end at TOTAL")
    plot.set_defaults(fn=cmd_plot)
    show = sub.add_parser("show", help="key points of a ColossalAI-style config (YAML or JSON)")
    show.add_argument("config", metavar="CONFIG")
    show.add_argument("--lr", type=_positive_float, default=1.0, help="base lr when the config has none")
    show.add_argument("--unit", choices=UNITS, default=None, help="what the lengths count (default updates; or the config's)")
    show.add_argument("--replan", type=parse_replan, action="append", default=[], metavar="STEP:TOTAL",
                      help="re-plan the schedule at STEP to end at TOTAL")
    show.set_defaults(fn=cmd_show)
    insp = sub.add_parser("inspect", help="the scheduler state in a DCP or ColossalAI checkpoint")
    insp.add_argument("checkpoint", metavar="CKPT_DIR")
    insp.add_argument("--key", default="lr_scheduler", help="the DCP state-dict key holding the scheduler/hook")
    insp.set_defaults(fn=cmd_inspect)
    register_find_lr(sub, _positive_int)
    return p


def _positive(kind: type) -> Any:
    """An argparse type: a finite number of ``kind`` > 0."""
    noun = "int" if kind is int else "number"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"expected a positive {noun}, got {text!r}")
        return value

    return parse


_positive_int, _positive_float = _positive(int), _positive(float)


def parse_replan(text: str) -> tuple[int, int]:
    """``STEP:TOTAL``: two ints, ``0 <= STEP < TOTAL``."""
    step, sep, total = text.partition(":")
    try:
        at, end = int(step), int(total)
    except ValueError:
        at, end = -1, -1
    if not sep or not 0 <= at < end:
        raise argparse.ArgumentTypeError(f"expected STEP:TOTAL with ints 0 <= STEP < TOTAL, got {text!r}")
    return at, end


def _size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    try:
        size = (int(w), int(h))
    except ValueError:
        size = (0, 0)
    if not sep or min(size) < 50 or max(size) > 10000:
        raise argparse.ArgumentTypeError(f"expected WxH in pixels (50..10000), got {text!r}")
    return size


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = pass_on(*build_parser().parse_known_args(argv))  # only find-lr takes flags it does not know
        return args.fn(args)
    except UsageError as e:
        print(f"colossal-sched: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
