"""`benchmark` makes its strategy's plan once for the whole run (measuring, exactness, training)."""
from dataclasses import dataclass

from bptt.studies.bench import benchmark
from bptt.training.train import SequenceSetup
from checkpointing import Revolve
from tasks.registry import make_task


@dataclass(frozen=True)
class CountingRevolve(Revolve):
    """Revolve that counts the plans it makes."""
    made: list = None

    def plan(self, profile):
        self.made.append(profile.length)
        return super().plan(profile)


def test_a_benchmark_makes_its_plan_once():
    strategy = CountingRevolve(2, made=[])
    setup = SequenceSetup(make_task("adding", seq_len=8), hidden=4, batch=2, steps=3, seed=1)
    row, run, _ = benchmark(setup, strategy)
    assert strategy.made == [8]
    assert row["grad_max_abs_diff_vs_full"] == 0.0 and len(run.history) == 3
