"""BatchRamp against a plain loop and Megatron's float formula; every bad input; the spec round trip."""
import json

import numpy as np
import torch
import pytest
from hypothesis import given, settings, strategies as st

from colossal_sched import _validate as V
from colossal_sched.ramp import BatchRamp


def oracle_batch(start, increment, ramp_samples, gbs, consumed):
    """Megatron's RampupBatchsizeNumMicroBatchesCalculator.update, transcribed (floats)."""
    if consumed > ramp_samples:
        return gbs
    per_increment = ramp_samples / ((gbs - start) // increment)
    return start + int(consumed / per_increment) * increment


def oracle_trajectory(ramp, updates):
    consumed, out = 0, [0]
    for _ in range(updates):
        consumed += ramp.batch_size(consumed)
        out.append(consumed)
    return out


ramps = st.builds(lambda s, i, k, r: BatchRamp(s, i, r, s + i * k), st.integers(1, 64), st.integers(1, 16),
                  st.integers(0, 12), st.integers(0, 5000))

TABLE = [BatchRamp(32, 32, 3000, 1024), BatchRamp(1, 1, 100, 8), BatchRamp(16, 16, 7, 256), BatchRamp(8, 8, 0, 64),
         BatchRamp(64, 1, 500, 64), BatchRamp(3, 5, 1, 23), BatchRamp(256, 256, 1_000_000, 1024)]


@pytest.mark.parametrize("ramp", TABLE, ids=str)
def test_batch_size_is_megatrons_on_small_ramps(ramp):
    if ramp.num_increments == 0 or ramp.ramp_samples == 0:
        assert all(ramp.batch_size(c) == ramp.global_batch_size for c in range(0, 3 * ramp.ramp_samples + 50))
        return
    s, i, r, g, n = ramp.start, ramp.increment, ramp.ramp_samples, ramp.global_batch_size, ramp.num_increments
    off = 0
    for c in list(range(0, min(r, 20000) + 50)) + [r + d for d in (-1, 0, 1, 99)]:
        mine, megatron = ramp.batch_size(c), oracle_batch(s, i, r, g, c)
        if mine != megatron:  # only float rounding at an exact stage boundary c * n == k * R, one increment lower
            assert c * n % r == 0 and megatron == mine - i, (c, mine, megatron)
            off += 1
    assert off <= n + 1


def test_megatrons_float_rounding_is_the_only_difference():
    ramp = BatchRamp(32, 32, 3000, 1024)  # R / n = 3000 / 31; 3000 / (3000 / 31) = 30.999...
    assert ramp.batch_size(3000) == 1024 and oracle_batch(32, 32, 3000, 1024, 3000) == 992


@settings(deadline=None, max_examples=60)
@given(ramps, st.integers(0, 300))
def test_samples_after_and_updates_to_match_the_loop(ramp, n):
    traj = oracle_trajectory(ramp, n)
    assert [ramp.samples_after(u) for u in range(n + 1)] == traj
    assert ramp.samples_after(np.arange(n + 1, dtype=np.int64)).tolist() == traj
    for s in range(0, traj[-1] + 1, max(1, traj[-1] // 97)):
        u = ramp.updates_to(s)
        assert traj[u] >= s and (u == 0 or traj[u - 1] < s), (s, u)
    probe = np.arange(0, traj[-1] + 1, max(1, traj[-1] // 500), dtype=np.int64)
    assert ramp.updates_to(probe).tolist() == [ramp.updates_to(int(s)) for s in probe]
    assert ramp.batch_size(probe).tolist() == [ramp.batch_size(int(s)) for s in probe]


@settings(deadline=None)
@given(ramps)
def test_batch_size_is_the_integer_formula(ramp):
    s, i, r, g, n = ramp.start, ramp.increment, ramp.ramp_samples, ramp.global_batch_size, ramp.num_increments
    for c in range(0, r + 20):
        want = g if c > r or n == 0 or r == 0 else s + i * (c * n // r)
        assert ramp.batch_size(c) == want


def test_large_values_are_exact():
    ramp = BatchRamp(32, 32, 300_000_000, 4096)
    u = 10**12
    big = ramp.samples_after(u)
    assert big == ramp.samples_after(ramp.updates_to(300_000_000)) + (u - ramp.updates_to(300_000_000)) * 4096
    assert ramp.updates_to(big) == u and ramp.updates_to(big + 1) == u + 1
    assert ramp.samples_after(np.array([u], dtype=np.int64)).tolist() == [big]
    with pytest.raises(ValueError, match="updates must be"):
        ramp.samples_after(np.array([2**62], dtype=np.int64))


def test_spec_round_trip_is_json():
    for ramp in TABLE:
        spec = json.loads(json.dumps(ramp.to_spec()))
        assert BatchRamp.from_spec(spec) == ramp and hash(BatchRamp.from_spec(spec)) == hash(ramp)
    assert BatchRamp(np.int64(4), np.int64(4), 10, 16).to_spec() == {"start": 4, "increment": 4, "ramp_samples": 10,
                                                                      "global_batch_size": 16}


@pytest.mark.parametrize("args, match", [
    ((0, 1, 10, 8), "start must be an int >= 1"),
    ((1, 0, 10, 8), "increment must be an int >= 1"),
    ((1, 1, -1, 8), "ramp_samples must be an int >= 0"),
    ((1, 1, 10, 0), "global_batch_size must be an int >= 1"),
    ((16, 1, 10, 8), r"start must be an int in \[1, global_batch_size=8\]"),
    ((1, 2, 10, 8), r"increment must divide global_batch_size - start = 8 - 1 = 7"),
    ((True, 1, 10, 8), "start must be an int"),
    ((1, 1.0, 10, 8), "increment must be an int"),
    ((1, 1, "10", 8), "ramp_samples must be an int"),
    ((1, 1, 10, None), "global_batch_size must be an int"),
])
def test_bad_arguments_are_refused_in_one_line(args, match):
    with pytest.raises(ValueError, match=match) as e:
        BatchRamp(*args)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("spec", [None, [], {"start": 1}, {"start": 1, "increment": 1, "ramp_samples": 1,
                                                            "global_batch_size": 2, "extra": 0}])
def test_from_spec_refuses_bad_data(spec):
    with pytest.raises(V.ArgumentTypeError, match="spec must be a dict with exactly the keys"):
        BatchRamp.from_spec(spec)
    with pytest.raises(ValueError, match="increment must divide"):
        BatchRamp.from_spec({"start": 1, "increment": 2, "ramp_samples": 1, "global_batch_size": 8})


@pytest.mark.parametrize("call", ["batch_size", "samples_after", "updates_to"])
@pytest.mark.parametrize("bad", [-1, 1.5, True, "3", np.array([1.0]), np.array([-1])])
def test_bad_counts_are_refused(call, bad):
    with pytest.raises(ValueError):
        getattr(BatchRamp(4, 4, 100, 16), call)(bad)


# ------------------------------------------------ a schedule counting samples under a ramp (Megatron-Bridge #2609)
counting = pytest.mark.skipif(not hasattr(__import__("colossal_sched").ClosedFormLR, "counting"),
                              reason="ClosedFormLR.counting is not on this branch yet")
G, BASE = 64, 0.1
RAMP = BatchRamp(G // 4, G // 4, 20 * G, G)  # from a quarter of the batch to the full batch over 20 full batches
W, T, D = 10 * G, 100 * G, 20 * G  # warmup: 10 full-batch updates' worth of samples; WSD decay ends at T samples


def wsd_oracle(c, w=W, t=T, d=D):
    """WSD by its formula at position ``c``: (c + 1) / W during the warmup, then base, then a linear decay to 0 at T."""
    if c < w:
        return (c + 1) / w * BASE
    if c < t - d:
        return BASE
    return BASE * (1 - min(c - (t - d), d) / d)


def wsd(unit, total, warmup, decay):
    import colossal_sched as cs

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=BASE)
    return cs.WarmupStableDecayLR(opt, total_steps=total, warmup_steps=warmup, decay_steps=decay).counting(unit)


@counting
def test_a_schedule_in_samples_keeps_its_declared_lengths_under_a_ramp():
    sched = wsd("samples", T, W, D)
    n_end = RAMP.updates_to(T)
    consumed = RAMP.samples_after(np.arange(n_end + 5, dtype=np.int64)).tolist()  # before update n
    lrs = [sched.lr_at(c)[0] for c in consumed]
    assert lrs == pytest.approx([wsd_oracle(c) for c in consumed], rel=1e-12, abs=1e-15)
    table = sched.lr_table(np.asarray(consumed, dtype=np.int64))
    assert np.asarray(table).reshape(len(consumed), -1)[:, 0].tolist() == pytest.approx(lrs, rel=1e-12, abs=1e-15)
    for n, c in enumerate(consumed[:40]):  # the scheduler itself, stepped to what each update consumed
        sched.step_to(c)
        assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(lrs[n], rel=1e-12, abs=1e-15)
    peak = next(n for n, c in enumerate(consumed) if c >= W - 1)  # the warmup's last position, W - 1, as declared
    assert all(lr < BASE for lr in lrs[:peak]) and lrs[peak] == pytest.approx(BASE, rel=1e-12)
    assert peak > 10  # under the ramp the declared samples take more updates than 10 full batches
    assert all(lr > 0 for lr in lrs[:n_end]) and all(lr == pytest.approx(0, abs=1e-15) for lr in lrs[n_end:])
    assert consumed[n_end] >= T > consumed[n_end - 1]  # the decay ends at the first update that reaches T samples


@counting
def test_the_same_schedule_in_updates_drifts_from_its_declared_samples_under_a_ramp():
    """The contrast (the Bridge bug's shape): lengths in full-batch updates, run under the ramp."""
    sched = wsd("updates", T // G, W // G, D // G)
    consumed = RAMP.samples_after(np.arange(T // G + 1, dtype=np.int64)).tolist()
    lrs = [sched.lr_at(n)[0] for n in range(T // G + 1)]
    peak = next(n for n, lr in enumerate(lrs) if lr == pytest.approx(BASE, rel=1e-12))
    assert peak == W // G - 1 and consumed[peak] < W - 1  # the warmup ends after fewer samples than declared
    # a run that stops at the declared samples needs more updates than T // G: the update-counted decay has ended
    # before it (lr 0 for the rest); a run that stops at T // G updates has consumed fewer samples than declared, and
    # a sample-counted decay stepped there has not finished (here it has not even begun: 4512 < T - D = 5120)
    assert RAMP.updates_to(T) > T // G and consumed[T // G] < T
    assert wsd_oracle(consumed[T // G]) > 0 and lrs[T // G] == 0
