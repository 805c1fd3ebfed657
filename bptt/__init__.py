"""bptt: backpropagation through time in NumPy, with interchangeable memory strategies.

The package is built in layers, every import pointing down (README, "How it is built"):
`bptt.engine` (Tensor, Function, backward, chains, gradcheck) < `bptt.nn` (layers and cells) <
`bptt.training` (train loop, optimisers, io, memory measurement) < `tasks` < `bptt.studies`
(benchmarks) < `bptt.cli` and `bptt.plots` (the surface). The planning package `checkpointing`
sits below them all. The engine's public names are re-exported here.
"""
from bptt.engine.chain import Chain, TapedChain
from bptt.engine.functions import concatenate, softmax, stack
from bptt.engine.losses import mse_loss, softmax_cross_entropy
from bptt.engine.gradcheck import GradcheckResult, gradcheck
from bptt.engine.tensor import Function, Tensor, backward, graph_bytes, is_grad_enabled, no_grad

__all__ = ["Chain", "Function", "GradcheckResult", "TapedChain", "Tensor", "backward",
           "concatenate", "gradcheck", "graph_bytes", "is_grad_enabled", "mse_loss", "no_grad",
           "softmax", "softmax_cross_entropy", "stack"]
