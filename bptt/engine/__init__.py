"""The autograd engine, the lowest layer of `bptt`.

`tensor` (Tensor, Function, backward, no_grad), `functions` (one Function per operation),
`losses` (fused softmax cross-entropy and MSE), `cell_functions` (fused RNN/LSTM/GRU steps),
`chain` (the chain protocol the checkpointing executor drives) and `gradcheck`. Importing this
package attaches the operations to Tensor's operators.
"""
from bptt.engine import functions  # noqa: F401  (fills Tensor's operator table)
