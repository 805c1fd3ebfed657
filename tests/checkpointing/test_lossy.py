"""Lossy strategies: the inner schedule unchanged, encoded bytes counted exactly, a gradient
close to full's but not equal, and exact strategies untouched."""
import numpy as np
import pytest

from bptt.nn.rnn import RNN
from checkpointing import (Adaptive, Full, Periodic, Revolve, Truncated, execute, gradients,
                           simulate)
from checkpointing.lossy import Compressed, Compression, LossyPlan, compressed_peak


def problem(cell="gru", T=40, dtype=np.float32, fused=True, every_step=True):
    rng = np.random.default_rng(0)
    model = RNN(cell, 2, 8, 1, np.random.default_rng(1), dtype=dtype, fused=fused,
                every_step=every_step)
    x = rng.standard_normal((T, 3, 2)).astype(dtype)
    y = rng.standard_normal((T, 3, 1) if every_step else (3, 1)).astype(dtype)
    return model, x, y


def cosine(a, b):
    a = np.concatenate([v.ravel() for v in a.values()]).astype(np.float64)
    b = np.concatenate([v.ravel() for v in b.values()]).astype(np.float64)
    return a @ b / np.linalg.norm(a) / np.linalg.norm(b)


@pytest.mark.parametrize("inner", [Full(), Truncated(5), Periodic(), Revolve(3), Revolve(12)])
def test_compressed_peak_without_codec_is_simulates_peak(inner):
    model, x, y = problem()
    profile = model.chain(x, y).profile()
    plan = inner.plan(profile)
    assert compressed_peak(plan, profile, Compression()) == simulate(
        plan, profile=profile).peak_bytes


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("codec", ["float16", "bfloat16"])
def test_ledger_counts_encoded_snapshots_exactly(cell, codec):
    model, x, y = problem(cell)
    profile = model.chain(x, y).profile()
    strategy = Compressed(Revolve(4), snapshots=codec)
    plan = strategy.plan(profile)
    assert isinstance(plan, LossyPlan) and list(plan) == list(Revolve(4).plan(profile))
    run = execute(plan, model.chain(x, y))
    # float32 states, two bytes a number: the planning bound is exact for these codecs
    assert run.peak_cache_bytes == compressed_peak(plan, profile, plan.compression)
    exact = execute(Revolve(4).plan(profile), model.chain(x, y)).peak_cache_bytes
    assert run.peak_cache_bytes < exact


@pytest.mark.parametrize("strategy", [Compressed(Revolve(4), snapshots="float16"),
                                      Compressed(Revolve(4), snapshots="int8"),
                                      Compressed(Full(), tapes="float16"),
                                      Compressed(Periodic(), tapes="int8", snapshots="bfloat16")])
def test_lossy_gradient_is_close_to_full_but_not_equal(strategy):
    model, x, y = problem()
    reference, ref_run = gradients(Full(), model.chain(x, y), model.parameters())
    grads, run = gradients(strategy, model.chain(x, y), model.parameters())
    assert cosine(grads, reference) > 0.999
    assert not all(np.array_equal(grads[k], reference[k]) for k in reference)
    # recomputed steps' losses come from decoded states: close to full's, not equal
    assert run.loss == pytest.approx(ref_run.loss, rel=1e-3)


def test_tape_compression_halves_a_full_plans_cache():
    model, x, y = problem("gru", T=60)
    profile = model.chain(x, y).profile()
    exact = execute(Full().plan(profile), model.chain(x, y)).peak_cache_bytes
    half = execute(Compressed(Full(), tapes="float16").plan(profile),
                   model.chain(x, y)).peak_cache_bytes
    quarter = execute(Compressed(Full(), tapes="int8").plan(profile),
                      model.chain(x, y)).peak_cache_bytes
    assert 0.45 < half / exact < 0.56      # shared states are encoded once, not per tape
    assert quarter < half


def test_truncated_windows_reverse_compressed_tapes_twice():
    model, x, y = problem("rnn", T=30)
    reference, _ = gradients(Truncated(5, 10), model.chain(x, y), model.parameters())
    grads, _ = gradients(Compressed(Truncated(5, 10), tapes="float16"), model.chain(x, y),
                         model.parameters())
    assert cosine(grads, reference) > 0.9999


def test_a_lossless_compression_is_bitwise_full():
    model, x, y = problem()
    profile = model.chain(x, y).profile()
    reference, _ = gradients(Full(), model.chain(x, y), model.parameters())
    plan = LossyPlan(40, "revolve", Revolve(4).plan(profile).actions, compression=Compression())

    class Fixed:
        name = "fixed"

        def plan(self, profile):
            return plan

    grads, _ = gradients(Fixed(), model.chain(x, y), model.parameters())
    assert all(np.array_equal(grads[k], reference[k]) for k in reference)


def test_adaptive_compress_fits_the_budget_and_mixes_slots():
    model, x, y = problem("gru", T=200)
    profile = model.chain(x, y).profile()
    S, Tb = profile.state_bytes[0], profile.tape_bytes[0]
    budget = 40 * S + Tb + S // 3  # bytes left over once the compressed slots are placed
    exact = Adaptive(budget).plan(profile)
    lossy = Adaptive(budget, compress="float16").plan(profile)
    assert isinstance(lossy, LossyPlan)
    run = execute(lossy, model.chain(x, y))
    assert run.peak_cache_bytes <= budget
    assert run.stats.forward_steps < simulate(exact, profile=profile).forward_steps
    snapshots = {a.index for a in lossy if type(a).__name__ == "Snapshot"}
    kept_exact = lossy.compression.exact_snapshots
    assert kept_exact and kept_exact < snapshots  # both kinds of slot


def test_adaptive_compress_plans_below_the_exact_minimum():
    model, x, y = problem("rnn", T=50)
    profile = model.chain(x, y).profile()
    below = Adaptive.minimum_budget(profile) - 1
    with pytest.raises(ValueError, match="below the minimum"):
        Adaptive(below).plan(profile)
    plan = Adaptive(below, compress="int8").plan(profile)
    assert execute(plan, model.chain(x, y)).peak_cache_bytes <= below
    with pytest.raises(ValueError, match="even with int8 slots"):
        Adaptive(profile.state_bytes[0], compress="int8").plan(profile)


def test_bad_lossy_options_are_refused():
    with pytest.raises(ValueError, match="snapshots or tapes"):
        Compressed(Revolve(3))
    with pytest.raises(ValueError, match="unknown codec 'half'"):
        Compressed(Revolve(3), snapshots="half")
    with pytest.raises(ValueError, match="unknown codec 'fp8'"):
        Adaptive(1000, compress="fp8")


def test_engine_tapes_cannot_be_compressed_and_say_so():
    model, x, y = problem(fused=False, T=5)
    plan = Compressed(Full(), tapes="float16").plan(model.chain(x, y).profile())
    with pytest.raises(TypeError, match="cannot be compressed.*snapshot compression"):
        execute(plan, model.chain(x, y))
