"""The executor's byte ledger asks the chain what buffer each array is: framework-neutral."""
import numpy as np

from bptt.nn.rnn import RNN
from checkpointing import Full, Revolve, execute, simulate


def problem(T=12):
    rng = np.random.default_rng(0)
    model = RNN("rnn", 2, 4, 1, np.random.default_rng(1), dtype=np.float32)
    return model, rng.standard_normal((T, 3, 2), np.float32), rng.standard_normal(
        (T, 3, 1), np.float32)


def test_the_ledger_counts_what_the_chains_buffers_say():
    model, inputs, targets = problem()
    plan = Revolve(3).plan(model.chain(inputs, targets).profile())
    exact = execute(plan, model.chain(inputs, targets)).peak_cache_bytes
    doubled = model.chain(inputs, targets)
    real = doubled.buffers
    doubled.buffers = lambda arrays: ((i, 2 * n) for i, n in real(arrays))
    assert execute(plan, doubled).peak_cache_bytes == 2 * exact
    merged = model.chain(inputs, targets)
    merged.buffers = lambda arrays: (("one buffer", 1) for _ in arrays)
    merged.external_arrays = lambda: []
    assert execute(plan, merged).peak_cache_bytes == 1  # everything shares one buffer


def test_views_of_one_numpy_buffer_count_once():
    model, inputs, targets = problem()
    chain = model.chain(inputs, targets)
    base = np.zeros(100, np.float32)
    pairs = list(chain.buffers([base, base[10:], base[::2][3:]]))
    assert pairs == [(id(base), 400)] * 3


def test_numpy_chains_count_exactly_what_the_plan_predicts():
    model, inputs, targets = problem()
    profile = model.chain(inputs, targets).profile()
    for strategy in (Full(), Revolve(2)):
        plan = strategy.plan(profile)
        assert (execute(plan, model.chain(inputs, targets)).peak_cache_bytes
                == simulate(plan, profile=profile).peak_bytes)
