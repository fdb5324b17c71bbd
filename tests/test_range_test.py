"""Issue 20 part 2: the lr range test (``lr_range_test``, ``find_lr.py``, ``colossal-sched find-lr``).

World 1 in this process; worlds 2 and 4 in one forked world each running every scenario (range_workers.py);
one real torchrun job through ``colossal-sched find-lr``.
"""
import math
import os
import sys

import numpy as np
import pytest
import torch

import forked
import range_workers
from colossal_sched import RangeTestResult, lr_range_test, plot_range_test
from colossal_sched.cli import main as cli_main
from colossal_sched.range_test import suggest, sweep
from distributed import run
from torchrun import ROOT, run_job

FIND_LR = os.path.join(ROOT, "launch_scripts", "find_lr.py")


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as each rank has (two threads on 2 shared cores made the first sweep 5x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_lm(layers=2):
    """train.py's tiny LM (one process), AdamW after one update (moments and step counts to restore)."""
    from launch_scripts.tiny_lm import Stage, batch
    from launch_scripts.train import lm_loss, param_groups

    model = Stage(64, 32, 4, layers, range(layers), 16)
    opt = torch.optim.AdamW(param_groups(model, 3e-3), lr=3e-3)
    loss_fn = lambda m, xy: lm_loss(m(xy[0]), xy[1])  # noqa: E731
    loss_fn(model, batch(0, 0, 8, 16, 64)).backward()
    opt.step()
    opt.zero_grad()
    return model, opt, loss_fn, lambda n: (batch(k, 0, 8, 16, 64) for k in range(1, n + 1))


def sgd_linear():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = lambda m, x: m(x).pow(2).mean()  # noqa: E731
    loss_fn(model, torch.randn(8, 4)).backward()
    opt.step()
    return model, opt, loss_fn


def data(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(8, 4, generator=g) for _ in range(n)]


def test_the_sweep_is_geometric_or_linear_and_ends_exactly_at_start_and_end():
    exp, lin = sweep(1e-6, 1.0, 7, "exp"), sweep(0.1, 0.7, 7, "linear")
    assert exp[0] == 1e-6 and exp[-1] == 1.0 and lin[0] == 0.1 and lin[-1] == 0.7
    assert np.allclose(np.diff(np.log10(exp)), 1.0) and np.allclose(np.diff(lin), 0.1)
    for i in range(7):
        assert math.isclose(exp[i], 1e-6 * (1.0 / 1e-6) ** (i / 6), rel_tol=1e-12)


@pytest.mark.timeout(120)
def test_world1_tiny_lm_suggests_an_lr_inside_the_sweep_and_leaves_everything_bit_identical():
    model, opt, loss_fn, batches = tiny_lm()
    model.eval()  # the sweep trains in train mode; the mode comes back
    first = next(model.parameters())
    first.grad = torch.full_like(first, 0.5)  # a gradient held before the test comes back too
    opt.param_groups[1]["lr"] = torch.tensor(2e-3)  # a tensor lr: the same object, its value restored in place
    tensor_lr = opt.param_groups[1]["lr"]
    before, rng = range_workers.snapshot(model, opt), torch.get_rng_state()
    result = lr_range_test(model, opt, batches(30), loss_fn, start_lr=1e-4, end_lr=1.0, num_updates=30)
    assert isinstance(result, RangeTestResult) and result.updates == 30 and result.reason == "completed"
    assert result.suggestion is not None and math.isfinite(result.suggestion) and 1e-4 <= result.suggestion <= 1.0
    assert result.suggestion in result.lrs and result.note is None and not result.stopped_early
    assert list(result.lrs) == sweep(1e-4, 1.0, 30)
    assert range_workers.unchanged(before, model, opt)
    assert opt.param_groups[1]["lr"] is tensor_lr and tensor_lr.item() == pytest.approx(2e-3)
    assert torch.equal(first.grad, torch.full_like(first, 0.5)) and all(p.grad is None for p in list(model.parameters())[1:])
    assert not model.training and torch.equal(torch.get_rng_state(), rng)


def test_the_smoothing_is_the_bias_corrected_moving_average_of_the_loss():
    model, opt, _ = sgd_linear()
    losses = [3.0, 2.0, 2.5, 1.0, 1.5]
    it = iter(losses)
    result = lr_range_test(model, opt, data(5), lambda m, x: m(x).sum() * 0 + next(it), start_lr=1e-3, end_lr=1e-2,
                           num_updates=5, beta=0.9)
    avg, expected = 0.0, []
    for i, loss in enumerate(losses):
        avg = 0.9 * avg + 0.1 * loss
        expected.append(avg / (1 - 0.9 ** (i + 1)))
    assert list(result.losses) == losses and np.allclose(result.smoothed, expected, rtol=1e-15, atol=0)


def test_the_suggestion_is_the_steepest_descent_over_log_lr_past_the_skipped_points():
    lrs = sweep(1e-4, 1.0, 40)
    loss = [4.0 - 3.0 / (1 + math.exp(-(math.log10(lr) + 2) * 4)) for lr in lrs]  # falls fastest at lr 1e-2
    lr, note = suggest(lrs, loss, skip_start=10, skip_end=1)
    assert note is None and abs(math.log10(lr) + 2) < 0.06
    assert suggest(lrs[:12], loss[:12]) == (None, "too few points to suggest an lr: 12 updates (1 finite ones after "
                                                  "skip_start=10, skip_end=1; 2 needed)")
    rising = suggest(lrs, [float(i) for i in range(40)])
    assert rising[0] is None and rising[1].startswith("the smoothed loss never falls")
    assert suggest(lrs, loss[:20] + [math.nan] * 20, skip_end=0)[0] <= lrs[19]  # nothing past the first non-finite point


@pytest.mark.parametrize("kwargs,message", [
    ({"start_lr": 1.0, "end_lr": 0.1}, "start_lr must be < end_lr (the sweep goes up), got start_lr=1.0, end_lr=0.1"),
    ({"start_lr": 0.1, "end_lr": 0.1}, "start_lr must be < end_lr"),
    ({"start_lr": 0.0}, "start_lr must be a finite float in (0.0, inf), got 0.0"),
    ({"end_lr": float("nan")}, "end_lr must be a finite float in (0.0, inf), got nan"),
    ({"num_updates": 1}, "num_updates must be an int >= 2, got 1"),
    ({"num_updates": 2.5}, "num_updates must be an int >= 2, got 2.5"),
    ({"num_updates": 10**6 + 1}, "num_updates must be an int in [2, 1000000] (a sweep, not a run), got 1000001"),
    ({"mode": "cos"}, "mode must be one of ['exp', 'linear'], got 'cos'"),
    ({"beta": 1.0}, "beta must be a finite float in [0.0, 1.0), got 1.0"),
    ({"diverge": 1.0}, "diverge must be a finite float in (1.0, inf), got 1.0"),
    ({"skip_start": -1}, "skip_start must be an int >= 0, got -1"),
    ({"loss_fn": None}, "loss_fn must be callable as loss_fn(model, batch), got None"),
])
def test_bad_input_is_one_line_naming_the_argument_and_changes_nothing(kwargs, message):
    model, opt, loss_fn = sgd_linear()
    before, batches = range_workers.snapshot(model, opt), iter(data(20))
    call = {"loss_fn": loss_fn, "start_lr": 1e-4, "end_lr": 1.0, **kwargs}
    with pytest.raises(ValueError) as e:
        lr_range_test(model, opt, batches, call.pop("loss_fn"), **call)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert range_workers.unchanged(before, model, opt) and len(list(batches)) == 20  # no batch taken


def test_data_that_runs_out_early_stops_restores_and_says_so():
    model, opt, loss_fn = sgd_linear()
    before = range_workers.snapshot(model, opt)
    result = lr_range_test(model, opt, data(5), loss_fn, num_updates=20)
    assert result.updates == 5 and result.stopped_early
    assert result.reason == "the data ran out on dp rank(s) [0] after 5 updates"
    assert result.suggestion is None and result.note.startswith("too few points")
    assert range_workers.unchanged(before, model, opt)
    empty = lr_range_test(model, opt, [], loss_fn, num_updates=20)
    assert empty.updates == 0 and empty.reason == "the data ran out on dp rank(s) [0] before update 0"
    assert range_workers.unchanged(before, model, opt)


def test_a_nan_loss_from_the_start_stops_at_once_and_restores():
    model, opt, loss_fn = sgd_linear()
    before = range_workers.snapshot(model, opt)
    result = lr_range_test(model, opt, data(20), lambda m, x: loss_fn(m, x) * float("nan"), num_updates=20)
    assert result.updates == 1 and result.stopped_early and result.suggestion is None
    assert result.reason == "diverged at update 0 (lr 1e-07): the loss is nan"
    assert range_workers.unchanged(before, model, opt)


def test_a_diverging_loss_stops_the_sweep_on_the_smoothed_loss():
    model, opt, loss_fn = sgd_linear()
    before = range_workers.snapshot(model, opt)
    result = lr_range_test(model, opt, data(60), loss_fn, start_lr=1e-3, end_lr=1e3, num_updates=60, mode="linear")
    assert result.stopped_early and result.reason.startswith("diverged at update ") and result.updates < 60
    last, best = result.smoothed[-1], min(result.smoothed)
    assert not math.isfinite(last) or last > 4 * best
    assert all(s <= 4 * min(result.smoothed[: i + 1]) for i, s in enumerate(result.smoothed[:-1]))
    assert range_workers.unchanged(before, model, opt)


def test_an_exception_in_the_loss_restores_the_model_and_optimizer():
    model, opt, loss_fn = sgd_linear()
    before, calls = range_workers.snapshot(model, opt), []

    def failing(m, x):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("boom")
        return loss_fn(m, x)

    with pytest.raises(RuntimeError, match="boom"):
        lr_range_test(model, opt, data(20), failing, num_updates=20)
    assert range_workers.unchanged(before, model, opt)


def test_a_tensor_the_optimizer_steps_outside_the_model_is_restored_too():
    model, opt, loss_fn = sgd_linear()
    temp = torch.nn.Parameter(torch.ones(1))
    opt.add_param_group({"params": [temp], "lr": 0.01})
    before = temp.detach().clone()
    lr_range_test(model, opt, data(10), lambda m, x: loss_fn(m, x) + (temp - 3.0).pow(2).sum(), num_updates=10)
    assert torch.equal(temp.detach(), before) and temp.grad is None and temp not in opt.state


def test_a_loss_fn_that_returns_no_loss_tensor_is_refused_and_restores():
    model, opt, loss_fn = sgd_linear()
    before = range_workers.snapshot(model, opt)
    for bad in (lambda m, x: 1.0, lambda m, x: m(x)):
        with pytest.raises(TypeError, match="loss_fn must return a one-element loss tensor"):
            lr_range_test(model, opt, data(5), bad, num_updates=5)
        assert range_workers.unchanged(before, model, opt)


def test_state_the_optimizer_did_not_have_is_removed_again():
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    lr_range_test(model, opt, data(12), lambda m, x: m(x).pow(2).mean(), num_updates=12)
    assert len(opt.state) == 0 and opt.param_groups[0]["lr"] == 1e-3


def test_the_plot_is_a_png_with_the_suggestion_marked(tmp_path):
    from PIL import Image

    model, opt, loss_fn, batches = tiny_lm()
    result = lr_range_test(model, opt, batches(20), loss_fn, start_lr=1e-4, end_lr=1.0, num_updates=20)
    assert plot_range_test(result, str(tmp_path / "lr.png")) == str(tmp_path / "lr.png")
    assert Image.open(tmp_path / "lr.png").size == (800, 500)
    short = lr_range_test(model, opt, [], loss_fn, num_updates=20)  # nothing to draw but the axes: still a file
    assert plot_range_test(short, str(tmp_path / "empty.png")) and os.path.getsize(tmp_path / "empty.png") > 0


def python(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    return forked.run([sys.executable, FIND_LR, *map(str, args)], cwd=ROOT, env={**env, "OMP_NUM_THREADS": "1"},
                      timeout=120)


@pytest.mark.timeout(150)
def test_find_lr_script_at_world1_prints_the_suggestion_and_writes_the_plot(tmp_path):
    out = python("--layers", 2, "--num-updates", 20, "--start-lr", 1e-4, "--log-every", 10, "--plot", tmp_path / "lr.png")
    assert out.returncode == 0, out.stderr
    assert "20 updates on 1 rank in " in out.stdout and ": completed; model and optimizer restored" in out.stdout
    assert "suggested lr: " in out.stdout and os.path.getsize(tmp_path / "lr.png") > 0
    assert out.stdout.count("update ") == 3  # updates 0, 10 and the last


@pytest.mark.parametrize("args,needle", [
    (["--start-lr", "1", "--end-lr", "0.1"], "--start-lr and --end-lr must be finite with 0 < --start-lr < --end-lr, "
                                             "got 1.0 and 0.1"),
    (["--num-updates", "1"], "--num-updates must be an int in [2, 1000000], got 1"),
    (["--mode", "cos"], "argument --mode: invalid choice: 'cos'"),
    (["--total-steps", "5"], "--total-steps is a training flag: the range test takes the model, mesh and data flags"),
    (["--pp", "2"], "--pp is a training flag"),
])
def test_find_lr_script_refuses_bad_flags_on_one_line(args, needle):
    out = python(*args)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and needle in out.stderr, out.stderr
    assert out.stderr.startswith("find_lr.py: error: ") and out.stdout == ""


def test_find_lr_help_shows_the_sweep_and_model_flags_only():
    text = " ".join(python("--help").stdout.split())
    for flag in ("--start-lr", "--end-lr", "--num-updates", "--mode", "--plot", "--dp", "--tp", "--layers", "--batch"):
        assert flag in text, flag
    for absent in ("--scheduler", "--total-steps", "--ckpt-dir", "--replan", "--pp PP", "--microbatches"):
        assert absent not in text, absent


def test_cli_find_lr_builds_the_torchrun_command_and_refuses_a_missing_script(capsys):
    from colossal_sched.cli import build_parser
    from colossal_sched.cli_find_lr import command, pass_on

    args = pass_on(*build_parser().parse_known_args(["find-lr", "--nproc-per-node", "4", "--tp", "2", "--plot", "x.png"]))
    assert command(args) == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4",
                             FIND_LR, "--tp", "2", "--plot", "x.png"]
    assert cli_main(["find-lr", "--script", "/no/such/find_lr.py"]) == 2
    assert cli_main(["find-lr", "--nproc-per-node", "2", "--start-lr", "1", "--end-lr", "0.1"]) == 2  # before torchrun
    assert cli_main(["list", "--tp", "2"]) == 2  # only find-lr passes flags on
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ("colossal-sched: error: --script: no such file '/no/such/find_lr.py'; give the path of "
                      "launch_scripts/find_lr.py")
    assert len(err) == 3 and "--start-lr and --end-lr must be finite with 0 < --start-lr < --end-lr" in err[1]
    assert "torch.distributed.run" not in "".join(err) and "Traceback" not in "".join(err)
    assert err[2] == "colossal-sched: error: unrecognized arguments: --tp 2"


@pytest.mark.multiprocess
@pytest.mark.xdist_group("range_test")  # one world or job at a time: world 4 alone fills the 2 cores
@pytest.mark.timeout(200)
@pytest.mark.parametrize("world,tp", [(2, 1), (4, 2)])
def test_every_rank_holds_the_same_curve_and_stops_together(tmp_path, world, tp):
    """dp 2 (FSDP2) and dp 2 x tp 2: the tiny LM's curve and suggestion are equal on every rank and model and
    optimizer bit-identical after; one rank's data running out or its NaN loss stops every rank, no hang."""
    results = run(world, range_workers.all_scenarios, tp, tmp_path=tmp_path, timeout=180)
    for r in results:
        assert r["refused"] == {"error": "start_lr must be < end_lr (the sweep goes up), got start_lr=1.0, end_lr=1.0",
                                "identical": True}
        for name in ("tiny_lm", "exhausted", "empty", "nan"):
            assert r[name] == results[0][name], name  # the curve, the stop and the suggestion: every rank's the same
            assert r[name]["identical"], name
    lm = results[0]["tiny_lm"]
    assert lm["reason"] == "completed" and len(lm["lrs"]) == 20 and 1e-4 <= lm["suggestion"] <= 1.0
    out = results[0]["exhausted"]
    assert len(out["lrs"]) == 7 and out["reason"] == f"the data ran out on dp rank(s) [{world - 1}] after 7 updates"
    assert results[0]["empty"]["reason"] == f"the data ran out on dp rank(s) [{world - 1}] before update 0"
    nan = results[0]["nan"]
    assert len(nan["lrs"]) == 1 and nan["reason"] == "diverged at update 0 (lr 0.0001): the loss is nan"


@pytest.mark.multiprocess
@pytest.mark.xdist_group("range_test")
@pytest.mark.timeout(240)
def test_colossal_sched_find_lr_under_torchrun_at_world_2(tmp_path):
    cmd = [sys.executable, "-m", "colossal_sched.cli", "find-lr", "--nproc-per-node", "2", "--layers", "2",
           "--num-updates", "16", "--start-lr", "1e-4", "--log-every", "0", "--plot", str(tmp_path / "lr.png")]
    out = run_job(cmd, {**os.environ, "OMP_NUM_THREADS": "1"}, timeout=220)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("16 updates on 2 ranks in ") == 1 and out.stdout.count("suggested lr: ") == 1, out.stdout
    assert "--nproc_per_node 2 " + FIND_LR in out.stderr.splitlines()[0]
    assert os.path.getsize(tmp_path / "lr.png") > 0
