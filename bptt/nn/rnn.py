"""A recurrent model (cell + linear readout + loss) and its unrolling as a chain of time steps."""
from __future__ import annotations

import numpy as np

from bptt.engine import losses
from bptt.engine.cell_functions import ReadoutMSE, readout_mse, readout_mse_grad
from bptt.engine.chain import TapedChain
from bptt.nn.cells import make_cell
from bptt.nn.dropout import Dropout
from bptt.nn.linear import Linear
from bptt.nn.module import Module
from bptt.engine.tensor import FLOAT_DTYPES, Tensor, no_grad
from checkpointing.plan import ChainProfile

LOSSES = ("mse", "xent")


class RNN(Module):
    """A recurrent cell read out linearly at each step: y_t = h_t @ W_y + b_y.

    `cell`: "rnn" (tanh Elman), "lstm" or "gru". `loss`: "mse" (targets are floats of shape
    (..., B, output_size)) or "xent" (softmax cross-entropy; targets are class indices of shape
    (..., B)). `every_step`: a loss on every step (targets (T, B, ...)) or on the last step only
    (targets (B, ...)). The objective is the mean of the step losses, so its scale does not grow
    with T. `fused`: one fused node per cell step and one for the read-out and its squared
    error (fast; chains run them on arrays, see `FusedSequenceChain`) or the step built from
    engine operations (the reference). `dropout` > 0 puts a `Dropout` between the cell and the
    read-out (h_t is dropped on its way to the loss, not on its way to the next step), active
    in chains built with a training `step`; its seed is drawn from `rng` after the weights.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, output_size: int,
                 rng: np.random.Generator, dtype=np.float32, loss: str = "mse",
                 every_step: bool = True, fused: bool = True, dropout: float = 0.0):
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {list(LOSSES)}")
        self.cell = make_cell(cell, input_size, hidden_size, rng, dtype=dtype, fused=fused)
        self.readout = Linear(hidden_size, output_size, rng, dtype=dtype)
        self.dropout = Dropout(dropout, seed=int(rng.integers(2 ** 63)) if dropout else 0)
        self.kind, self.loss, self.every_step = cell, loss, every_step
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.dtype = np.dtype(dtype)

    def config(self) -> dict:
        """Constructor arguments as JSON-ready data (what `bptt.training.io` saves beside the weights)."""
        config = {"architecture": "rnn", "cell": self.kind, "input_size": self.input_size,
                  "hidden_size": self.hidden_size, "output_size": self.output_size,
                  "dtype": self.dtype.name, "loss": self.loss, "every_step": self.every_step}
        if self.dropout.p:
            config["dropout"] = self.dropout.p
        return config

    @classmethod
    def from_config(cls, config: dict, rng: np.random.Generator | None = None) -> "RNN":
        """An RNN built from `config()` output (weights freshly drawn from `rng`)."""
        return cls(config["cell"], config["input_size"], config["hidden_size"],
                   config["output_size"], rng or np.random.default_rng(0),
                   dtype=np.dtype(config["dtype"]), loss=config["loss"],
                   every_step=config["every_step"], dropout=config.get("dropout", 0.0))

    def chain(self, inputs: np.ndarray, targets: np.ndarray, input_grad: bool = False,
              step: int | None = None) -> "SequenceChain":
        """The unrolled model on one batch, as a chain of T time steps for the executor.

        `step`: the training step, which keys the dropout masks (None: no dropout). With
        dropout the steps run as engine graphs (`SequenceChain`) rather than on arrays.
        """
        fused = self.cell.fused and (step is None or not self.dropout.p)
        kind = FusedSequenceChain if fused else SequenceChain
        return kind(self, inputs, targets, input_grad=input_grad, step=step)

    def forward(self, *args, **kwargs):
        """An RNN is unrolled, not called: see `chain` and `predict`."""
        raise TypeError("an RNN is not called: use model.chain(inputs, targets) to train it "
                        "with a memory strategy, model.predict(inputs) for its read-outs")

    def step_loss(self, h: Tensor, target: np.ndarray, scale: float) -> Tensor:
        """The loss of one read-out step, already divided by the number of loss steps."""
        if self.loss == "mse" and self.cell.fused:
            return ReadoutMSE()(h, self.readout.weight, self.readout.bias, target, scale=scale)
        y = self.readout(h)
        if self.loss == "mse":
            return losses.mse_loss(y, target) * scale
        return losses.softmax_cross_entropy(y, target) * scale

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Read-outs at every step, (T, B, output_size), computed without recording."""
        chain = self.chain(inputs, None)
        state, outputs = chain.initial_state(), []
        with no_grad():
            for t in range(chain.length):
                state = chain.advance(t, state)
                outputs.append(self.readout(Tensor(state[0])).data)
        return np.stack(outputs)


class SequenceChain(TapedChain):
    """An `RNN` unrolled over a batch of sequences: step t maps state t to state t+1.

    inputs: (T, B, D) floats of the model's dtype. targets: see `RNN`; None for prediction only.
    With `input_grad`, the gradient with respect to the inputs is collected in `self.input_grad`
    (T, B, D) as the steps are reversed. `step`: the training step keying dropout's mask of
    time step t (call t), so a recomputed time step draws its mask again.
    """

    def __init__(self, model: RNN, inputs: np.ndarray, targets: np.ndarray | None,
                 input_grad: bool = False, step: int | None = None):
        self.model = model
        self.training_step = step
        self.inputs = _check_inputs(inputs, model)
        self.length, batch = self.inputs.shape[:2]
        self.batch = batch
        self.targets = None if targets is None else _check_targets(targets, model, self.inputs)
        self.loss_steps = self.length if model.every_step else 1
        self.input_grad = np.zeros_like(self.inputs) if input_grad else None
        self._extras: tuple[Tensor, ...] = ()

    def initial_state(self):
        return self.model.cell.initial_state(self.batch)

    def external_arrays(self):
        return ([self.inputs] + ([] if self.targets is None else [self.targets])
                + [p.data for p in self.model.parameters()])

    def step(self, i, state, need_loss):
        x = Tensor(self.inputs[i], requires_grad=self.input_grad is not None)
        self._extras = (x,) if self.input_grad is not None else ()
        state = self.model.cell(x, state)
        loss = None
        if need_loss and self.targets is not None and (self.model.every_step
                                                       or i == self.length - 1):
            target = self.targets[i] if self.model.every_step else self.targets
            h = self.model.dropout(self.model.cell.hidden(state), step=self.training_step,
                                   call=i)
            loss = self.model.step_loss(h, target, 1.0 / self.loss_steps)
        return state, loss

    def recorded_extras(self, i):
        return self._extras

    def profile(self):
        """Uniform sizes; with a loss on the last step only, that step's larger tape for all
        (an overestimate of the other steps by the loss's cache, so that plans still fit)."""
        profile = super().profile()
        if self.model.every_step or self.targets is None or self.length == 1:
            return profile
        last = self.measure_step(self.length - 1, self.initial_state())[1]
        return ChainProfile.uniform(self.length, profile.state_bytes[0],
                                    max(profile.tape_bytes[0], last))

    def collect_input_grads(self, i, extras):
        if self.input_grad is not None and extras and extras[0].grad is not None:
            self.input_grad[i] += extras[0].grad


class FusedSequenceChain(SequenceChain):
    """A `SequenceChain` of a fused cell, run on arrays: each step is the cell's core
    (`bptt.engine.cell_functions`) between GEMMs, and the GEMMs that do not wait for the step before are
    taken over blocks of `BLOCK` consecutive steps, as a hand-written BPTT would take them over
    the whole sequence:
      - the input projection a = x W_x + b of a block is one GEMM, run when one of its steps
        first goes forward and kept until another block's is needed;
      - the parameter gradients (W_x, W_h, biases, read-out) of a block are one GEMM each,
        taken once its steps are reversed; until then each reversed step leaves its state and
        pre-activation gradient in fixed block buffers.
    Only h W_h and its transpose run step by step. Blocks are aligned to absolute step indices
    and an exact plan reverses T-1..0, so every exact strategy adds the same partial sums in the
    same order: their gradients are bitwise those of `full`. A reverse that does not continue
    the block's run (truncated BPTT) adds the run so far first; the executor's `finish` adds
    the last run. The work buffers hold about 3 x BLOCK x B x G numbers (G = H, 4H or 3H, plus
    W_h transposed) whatever the plan: outside the cache the executor counts, seen by
    tracemalloc. `BLOCK` trades them against GEMM efficiency (4: within 1-2% of 16 in time).
    Weights are read once per run: change them between runs, not during one.

    `step` (the engine's graph of one step, fused nodes) remains for whole-graph backward.
    """

    BLOCK = 4

    def __init__(self, model: RNN, inputs: np.ndarray, targets: np.ndarray | None,
                 input_grad: bool = False, step: int | None = None):
        if step is not None and model.dropout.p:
            raise ValueError("a fused chain runs no dropout: use model.chain(..., step=step)")
        super().__init__(model, inputs, targets, input_grad=input_grad, step=step)
        self.core = model.cell.core
        self._mse = model.loss == "mse"
        self._scale = 1.0 / self.loss_steps
        self._first_loss = 0 if model.every_step else self.length - 1
        self._weights_read = False  # weights are read at the first forward of a run
        self._block = -1            # the block whose input projection is in self._projection
        self._run = None            # [block, lowest row, highest row] reversed, not yet added
        self._projection = None     # made at the first forward
        self._rows = None           # the reverse's block buffers, made at its first step

    # --- forward -------------------------------------------------------------------------------
    def _read_weights(self) -> None:
        cell, readout = self.model.cell, self.model.readout
        W_x, W_h, b_x, b_h = cell.affine_parameters()
        self._W_x, self._W_h, self._b_x = W_x.data, W_h.data, b_x.data
        self._b_h = None if b_h is None else b_h.data
        self._W_y, self._b_y = readout.weight.data, readout.bias.data
        feedback = getattr(self.model, "feedback", None)
        if feedback is None:
            self._W_hT = np.ascontiguousarray(W_h.data.T)  # dh = du W_h^T, at GEMM speed
            self._W_yT = np.ascontiguousarray(readout.weight.data.T)
        else:  # a backward variant (bptt.nn.feedback): its matrices stand where W^T stood
            self._W_hT = feedback.matrix("W_h") if "W_h" in feedback.names() else None
            self._W_yT = feedback.matrix("readout")
        self._params = [p if p is not None and p.requires_grad else None
                        for p in (W_x, W_h, b_x, b_h, readout.weight, readout.bias)]
        if self._projection is None:
            K = min(self.BLOCK, self.length)
            self._projection = np.empty((K, self.batch, W_x.shape[1]), cell.dtype)
        self._weights_read = True

    def _project(self, j: int) -> None:
        """Compute block j's input projection: one GEMM for its steps."""
        if not self._weights_read:
            self._read_weights()
        start = j * self.BLOCK
        n = min(self.BLOCK, self.length - start)
        block = self._projection[:n]
        np.matmul(self.inputs[start:start + n].reshape(n * self.batch, -1), self._W_x,
                  out=block.reshape(n * self.batch, -1))
        block += self._b_x
        self._block = j

    def _forward(self, i: int, state):
        j, k = divmod(i, self.BLOCK)
        if j != self._block:
            self._project(j)
        u = state[0] @ self._W_h
        if self._b_h is not None:
            u += self._b_h
        return self.core.forward(self._projection[k], u, state)

    def advance(self, i, state):
        return self._forward(i, state)[0]

    def record(self, i, state):
        new_state, cache = self._forward(i, state)
        tape = _StepTape(state, new_state, cache)
        if i >= self._first_loss and self.targets is not None:
            target = self.targets[i] if self.model.every_step else self.targets
            if self._mse:
                loss, tape.head = readout_mse(new_state[0], self._W_y, self._b_y, target,
                                              self._scale)
            else:
                logits = new_state[0] @ self._W_y
                logits += self._b_y
                tape.head = losses.SoftmaxCrossEntropy()
                loss = tape.head.run(logits, target) * np.asarray(self._scale, logits.dtype)
            tape.loss_value = float(loss)
        return tape

    # --- reverse -------------------------------------------------------------------------------
    def reverse(self, i, tape, grad, with_loss=True, keep=False):
        k, first = self._row(i)
        h_rows, da_rows, du_rows, dy_rows = self._rows
        dnew = [None] * len(tape.state) if grad is None else list(grad)
        dy = dy_rows[k]
        if with_loss and tape.head is not None:
            if self._mse:
                dy[...] = readout_mse_grad(tape.head, self._scale)
            else:
                dy[...] = tape.head.backward(np.asarray(self._scale, dy.dtype))
            dh = _outer(dy, self._W_yT, out=h_rows[-1])  # the last row is scratch
            if dnew[0] is not None:
                dh += dnew[0]
            dnew[0] = dh
        else:
            dy.fill(0)
        if grad is None:
            dnew = [np.zeros_like(s) if g is None else g for s, g in zip(tape.state, dnew)]
        da, du, direct = self.core.backward(dnew, tape.inputs, tape.cache, da_rows[k],
                                            None if du_rows is None else du_rows[k])
        if self._W_hT is None:  # dfa: the projected read-out errors of this and later steps
            dh = dnew[0].copy()
        else:
            dh = du @ self._W_hT
            if direct[0] is not None:
                dh += direct[0]
        h_rows[k] = tape.inputs[0]
        if first:
            h_rows[k + 1] = tape.state[0]  # the read-out's input for the run's last step
        if k == 0:
            self._add_run()
        return (dh, *direct[1:])

    def _row(self, i: int) -> tuple[int, bool]:
        """Step i's row in the block buffers, and whether it starts a new run of rows."""
        j, k = divmod(i, self.BLOCK)
        run = self._run
        if run is not None:
            if run[0] == j and run[1] == k + 1:
                run[1] = k
                return k, False
            self._add_run()
        if self._rows is None:
            K, B = self._projection.shape[:2]
            G, dtype = self._projection.shape[2], self._projection.dtype
            self._rows = (np.empty((K + 2, B, self.model.hidden_size), dtype),
                          np.empty((K, B, G), dtype),
                          np.empty((K, B, G), dtype) if self.core.own_du else None,
                          np.empty((K, B, self.model.output_size), dtype))
        self._run = [j, k, k]
        return k, True

    def _add_run(self) -> None:
        """Add the reversed rows' parameter (and input) gradients: one GEMM per weight."""
        j, lo, hi = self._run
        self._run = None
        n, B = hi - lo + 1, self.batch
        start = j * self.BLOCK + lo
        h_rows, da_rows, du_rows, dy_rows = self._rows
        da = da_rows[lo:hi + 1].reshape(n * B, -1)
        du = da if du_rows is None else du_rows[lo:hi + 1].reshape(n * B, -1)
        dy = dy_rows[lo:hi + 1].reshape(n * B, -1)
        h_in = h_rows[lo:hi + 1].reshape(n * B, -1)
        h_out = h_rows[lo + 1:hi + 2].reshape(n * B, -1)
        x = self.inputs[start:start + n].reshape(n * B, -1)
        W_x, W_h, b_x, b_h, W_y, b_y = self._params
        _add_grad(W_x, x.T, da)
        _add_grad(W_h, h_in.T, du)
        _add_grad(b_x, None, da)
        _add_grad(b_h, None, du)
        _add_grad(W_y, h_out.T, dy)
        _add_grad(b_y, None, dy)
        if self.input_grad is not None:
            self.input_grad[start:start + n] += (da @ self._W_x.T).reshape(n, B, -1)

    def finish(self):
        """Add the gradients still held in the block buffers, and forget the weights read."""
        if self._run is not None:
            self._add_run()
        self._weights_read, self._block = False, -1

    def measure_step(self, i, state):
        sizes = super().measure_step(i, state)
        self.finish()  # parameters may change before the chain runs
        return sizes


def _outer(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """a @ b into `out`; with one column in `a` (a single read-out) the product of the columns
    and rows is the same numbers, 3-4x faster than BLAS's GEMM at inner size 1."""
    if a.shape[1] == 1:
        return np.multiply(a, b, out=out)
    return np.matmul(a, b, out=out)


def _add_grad(p, a: np.ndarray | None, g: np.ndarray) -> None:
    """p.grad += a @ g (a weight), or the sum of g's rows (a bias); nothing if p is None."""
    if p is not None:
        grad = g.sum(axis=0) if a is None else a @ g
        if p.grad is None:
            p.grad = grad
        else:
            p.grad += grad


class _StepTape:
    """What `FusedSequenceChain.record(i)` keeps: state i, state i+1, the core's cache and the
    read-out's (diff for mse, the cross-entropy node for xent)."""

    __slots__ = ("inputs", "state", "cache", "head", "loss_value", "packed")

    def __init__(self, inputs, state, cache):
        self.inputs, self.state, self.cache = inputs, state, cache
        self.head, self.loss_value, self.packed = None, 0.0, None

    def compress(self, encode) -> None:
        """Keep states and cache only encoded (`encode`: array -> `checkpointing.codecs.Encoded`);
        the read-out's cache (B x O numbers) stays exact. A compressed tape (ActNN-style)."""
        self.packed = tuple(tuple(encode(a) for a in part)
                            for part in (self.inputs, self.state, self.cache))
        self.inputs = self.state = self.cache = None

    def decompress(self, decode) -> None:
        """Decode what `compress` kept back into arrays, for the reverse."""
        self.inputs, self.state, self.cache = (tuple(decode(e) for e in part)
                                               for part in self.packed)
        self.packed = None

    def arrays(self) -> list[np.ndarray]:
        """Every array this tape keeps alive."""
        if self.packed is not None:
            found = [a for part in self.packed for e in part for a in e.arrays]
        else:
            found = [*self.inputs, *self.state, *self.cache]
        if isinstance(self.head, np.ndarray):
            found.append(self.head)
        elif self.head is not None:
            found.extend(a for a in self.head.saved if isinstance(a, np.ndarray))
        return found


def _all_finite(array: np.ndarray) -> bool:
    """No NaN or Inf in `array`, without a temporary as large as it (min and max propagate NaN;
    an Inf is the min or the max): a sequence's check must not cost memory that grows with T."""
    return bool(np.isfinite(array.min()) and np.isfinite(array.max()))


def _check_inputs(inputs, model: RNN) -> np.ndarray:
    if not isinstance(inputs, np.ndarray) or inputs.dtype not in FLOAT_DTYPES:
        kind = getattr(inputs, "dtype", type(inputs).__name__)
        raise TypeError(f"inputs must be a float32/float64 array, got {kind}")
    if inputs.ndim != 3 or inputs.shape[2] != model.input_size:
        raise ValueError(f"inputs must have shape (T, B, {model.input_size}), got {inputs.shape}")
    if inputs.shape[0] < 1 or inputs.shape[1] < 1:
        raise ValueError(f"inputs need T >= 1 steps and a batch >= 1, got shape {inputs.shape}")
    if inputs.dtype != model.dtype:
        raise TypeError(f"inputs have dtype {inputs.dtype} but the model is {model.dtype}")
    if not _all_finite(inputs):
        bad = np.argwhere(~np.isfinite(inputs))[0]
        raise ValueError(f"inputs contain NaN or Inf (first at index {tuple(int(i) for i in bad)})")
    return inputs


def _check_targets(targets, model: RNN, inputs: np.ndarray) -> np.ndarray:
    T, B = inputs.shape[:2]
    lead = (T, B) if model.every_step else (B,)
    shape = lead + ((model.output_size,) if model.loss == "mse" else ())
    if not isinstance(targets, np.ndarray) or targets.shape != shape:
        got = getattr(targets, "shape", type(targets).__name__)
        raise ValueError(f"targets must have shape {shape}, got {got}")
    if model.loss == "xent" and not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"cross-entropy targets must be class indices (integers), "
                        f"got dtype {targets.dtype}")
    if model.loss == "mse" and targets.dtype != model.dtype:
        raise TypeError(f"targets have dtype {targets.dtype} but the model is {model.dtype}")
    if model.loss == "mse" and not _all_finite(targets):
        bad = np.argwhere(~np.isfinite(targets))[0]
        raise ValueError(f"targets contain NaN or Inf (first at index "
                         f"{tuple(int(i) for i in bad)})")
    return targets
