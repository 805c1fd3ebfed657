"""bptt's plans driving PyTorch loops: Revolve, budget DP and online checkpointing for torch.

    from checkpointing import Revolve
    from checkpointing.torch import checkpointed_loop

    def step(i, state):                      # one step over tensors: (next state, loss)
        h, c = cell(x[i], state)
        return (h, c), ((readout(h) - y[i]) ** 2).mean()

    loss = checkpointed_loop(step, (h0, c0), 1000, Revolve(slots=10))
    loss.backward()                          # parameter .grads as plain autograd gives them

PyTorch offers `torch.utils.checkpoint` segments; this bridge runs any of bptt's plans on a
torch step instead: the executor keeps exactly the states and tapes (each step's autograd graph)
the plan says, and counts their bytes by torch storage. Imported only when used; torch is the
optional `bench` extra (`pip install "bptt[bench]"`).

    TorchChain(step, state0, length)    the step as a chain for `checkpointing.execute`
    checkpointed_loop(step, state0, length, strategy)   the loop's loss as one autograd node
    peak_allocated(fn, device)          torch's own count of the bytes a call allocated at peak
"""
try:
    import torch  # noqa: F401  (the real torch: absolute import)
except ImportError as error:
    raise ImportError("checkpointing.torch needs PyTorch, which is not installed: "
                      "pip install \"bptt[bench]\" (or torch==2.13.0)") from error

from checkpointing.torch.chain import TorchChain, TorchTape
from checkpointing.torch.loop import checkpointed_loop
from checkpointing.torch.memory import peak_allocated

__all__ = ["TorchChain", "TorchTape", "checkpointed_loop", "peak_allocated"]
