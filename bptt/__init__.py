"""bptt: backpropagation through time in NumPy, with interchangeable memory strategies.

The engine (`Tensor`, `Function`, `backward`, `no_grad`) lives here; operations in
`bptt.functions`, layers and cells in `bptt.nn`, optimisers in `bptt.optim`.
"""
from bptt.functions import concatenate, mse_loss, softmax, softmax_cross_entropy, stack
from bptt.gradcheck import GradcheckResult, gradcheck
from bptt.tensor import Function, Tensor, backward, graph_bytes, is_grad_enabled, no_grad

__all__ = ["Function", "GradcheckResult", "Tensor", "backward", "concatenate", "gradcheck",
           "graph_bytes", "is_grad_enabled", "mse_loss", "no_grad", "softmax",
           "softmax_cross_entropy", "stack"]
