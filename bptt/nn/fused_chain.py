"""`FusedSequenceChain`: an `RNN`'s chain run on arrays, the cell's fused core between GEMMs
taken over blocks of steps, and windows of steps recorded and reversed in one call."""
from __future__ import annotations

import contextlib

import numpy as np

from bptt.engine import losses
from bptt.engine.cell_functions import readout_mse_grad, readout_mse_steps
from bptt.nn.sequence_chain import SequenceChain


class FusedSequenceChain(SequenceChain):
    """A `SequenceChain` of a fused cell, run on arrays: each step is the cell's core
    (`bptt.engine.cell_functions`) between GEMMs, and the GEMMs that do not wait for the step
    before are taken over blocks of `block` consecutive steps, as a hand-written BPTT would take
    them over the whole sequence:
      - the input projection a = x W_x + b of a block is one GEMM, run when one of its steps
        first goes forward and kept until another block's is needed;
      - the parameter gradients (W_x, W_h, biases, read-out) of a block are one GEMM each,
        taken once its steps are reversed; until then each reversed step leaves its state and
        pre-activation gradient in fixed block buffers.
    Only h W_h and its transpose run step by step. Blocks are aligned to absolute step indices
    and an exact plan reverses T-1..0, so every exact strategy adds the same partial sums in the
    same order: their gradients are bitwise those of `full`. A reverse that does not continue
    the block's run (truncated BPTT) adds the run so far first; the executor's `finish` adds
    the last run. The work buffers hold about 3 x block x B x G numbers (G = H, 4H or 3H, plus
    W_h transposed) whatever the plan: outside the cache the executor counts, seen by
    tracemalloc. `block_size` trades them against the per-block Python and GEMM calls: as many
    steps as keep a block's (B, G) rows within `BLOCK_NUMBERS`, from 4 to 32. Measured: the
    tanh RNN at B = 1, H = 16 gets 32 and runs 1.6x faster than with 4, where Python's
    per-block calls dominate; at B = 32, H = 256 every cell gets 4 (8 and 16 measured 0-5%
    faster there, within the machine's run-to-run noise).
    A larger bound would cost small models traced memory: with 65536 numbers, the adding
    task's GRU (B = 32, H = 32) got blocks of 16 and truncated BPTT's traced peak went from
    318 to 849 KiB for no measurable gain.
    Weights are read once per run: change them between runs, not during one.

    Windows: with an mse loss the chain `fuses_runs`: the executor hands it each window of a
    plan that records steps a..b-1 and at once reverses them all (`full`'s one window, each of
    `checkpoint`'s segments) as `record_run` and `reverse_run`, sparing the per-step actions,
    tapes and ledger entries. The tanh RNN's states are its pre-activations u = h W_h: a
    window keeps them in one buffer and reads them out in one pass. The other cells allocate
    per step as the step-by-step path does (for an LSTM at T = 1000 one fresh 128 MiB buffer
    made `full` 20% slower, in page faults). Every number is computed by the same operations
    as step by step, so either path gives the same bits.

    `step` (the engine's graph of one step, fused nodes) remains for whole-graph backward.
    """

    BLOCK_MIN, BLOCK_MAX, BLOCK_NUMBERS = 4, 32, 8192

    @classmethod
    def block_size(cls, batch: int, width: int) -> int:
        """Steps per block for a batch of `batch` and G = `width` gate columns: the largest
        power of two from BLOCK_MIN to BLOCK_MAX whose block rows hold <= BLOCK_NUMBERS."""
        block = cls.BLOCK_MIN
        while block < cls.BLOCK_MAX and 2 * block * batch * width <= cls.BLOCK_NUMBERS:
            block *= 2
        return block

    def __init__(self, model, inputs: np.ndarray, targets: np.ndarray | None,
                 input_grad: bool = False, step: int | None = None):
        if step is not None and model.dropout.p:
            raise ValueError("a fused chain runs no dropout: use model.chain(..., step=step)")
        super().__init__(model, inputs, targets, input_grad=input_grad, step=step)
        self.core = model.cell.core
        self.block = self.block_size(self.batch, self.core.width * model.hidden_size)
        self._mse = model.loss == "mse"
        # Windows (see the class docstring) for mse; step by step for cross-entropy, and for a
        # subclass that overrides record or reverse, which windows would silently bypass.
        kind = type(self)
        self.fuses_runs = (self._mse and kind.record is FusedSequenceChain.record
                           and kind.reverse is FusedSequenceChain.reverse)
        self._scale = 1.0 / self.loss_steps
        self._first_loss = 0 if model.every_step else self.length - 1
        self._weights_read = False  # weights are read at the first forward of a run
        self._block = -1            # the block whose input projection is in self._projection
        self._run = None            # [block, lowest row, highest row] reversed, not yet added
        self._projection = None     # made at the first forward
        self._rows = None           # the reverse's block buffers, made at its first step
        self._quiet = False         # inside `session`: NumPy's FP warnings already ignored

    @contextlib.contextmanager
    def session(self):
        """One run under `np.errstate(invalid="ignore", over="ignore")`, entered once instead
        of per read-out step; a non-finite loss is still reported, naming its inputs."""
        with np.errstate(invalid="ignore", over="ignore"):
            self._quiet = True
            try:
                yield
            finally:
                self._quiet = False

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
            K = min(self.block, self.length)
            self._projection = np.empty((K, self.batch, W_x.shape[1]), cell.dtype)
        self._weights_read = True

    def _project(self, j: int) -> None:
        """Compute block j's input projection: one GEMM for its steps."""
        if not self._weights_read:
            self._read_weights()
        start = j * self.block
        n = min(self.block, self.length - start)
        block = self._projection[:n]
        np.matmul(self.inputs[start:start + n].reshape(n * self.batch, -1), self._W_x,
                  out=block.reshape(n * self.batch, -1))
        block += self._b_x
        self._block = j

    def _forward(self, i: int, state, out: np.ndarray | None = None):
        """Step i's (next state, cache) from `state`; u = h W_h is written into `out` if given."""
        j, k = divmod(i, self.block)
        if j != self._block:
            self._project(j)
        u = np.matmul(state[0], self._W_h, out=out)
        if self._b_h is not None:
            u += self._b_h
        return self.core.forward(self._projection[k], u, state)

    def advance(self, i, state):
        return self._forward(i, state)[0]

    def record(self, i, state):
        new_state, cache = self._forward(i, state)
        tape = _StepTape(state, new_state, cache)
        if i >= self._first_loss and self.targets is not None:
            if self._mse:
                values, diff = self._read_out(new_state[0][None], i, i + 1)
                tape.head, loss = diff[0], values[0]
            else:
                target = self.targets[i] if self.model.every_step else self.targets
                logits = new_state[0] @ self._W_y
                logits += self._b_y
                tape.head = losses.SoftmaxCrossEntropy()
                loss = tape.head.run(logits, target) * np.asarray(self._scale, logits.dtype)
            tape.loss_value = float(loss)
        return tape

    def _read_out(self, h: np.ndarray, start: int, stop: int):
        """(losses, diff) of the read-outs of steps start..stop-1, whose new h are `h`
        (n, B, H): `readout_mse_steps`, so a window's read-out in one pass is its steps'."""
        target = self.targets[start:stop] if self.model.every_step else self.targets[None]
        return readout_mse_steps(h, self._W_y, self._b_y, target, self._scale,
                                 guarded=not self._quiet, first_step=start)

    def record_run(self, start: int, stop: int, state) -> "_RunTape":
        """Steps start..stop-1 from `state`, recorded back to back for `reverse_run`.

        The last step's u gets an array of its own: the window's last state is the
        executor's current state afterwards (the tanh RNN's h' is u), and as a row of the
        window's buffer it would keep the whole buffer alive after the window is reversed.
        """
        if not self._weights_read:
            self._read_weights()
        n = stop - start
        shared = n - 1 if self.core.width == 1 else 0  # the tanh RNN's states: one buffer
        run = _RunTape(start, state, n, np.empty((shared, self.batch, self._projection.shape[2]),
                                                 self._projection.dtype))
        forward, states, caches, pre = self._forward, run.states, run.caches, run.pre
        for t in range(n):
            state, cache = forward(start + t, state, out=pre[t] if t < shared else None)
            states.append(state)
            caches.append(cache)
        first = max(start, self._first_loss)
        if self.targets is None or first >= stop:
            return run
        if first < stop - 1 and states[-2][0].base is pre:  # h' is u (the tanh RNN)
            head, run.errors = self._read_out(pre[first - start:], first, stop - 1)  # one pass
            last, last_diff = self._read_out(states[-1][0][None], stop - 1, stop)
            values, run.diff = np.concatenate([head, last]), [*run.errors, last_diff[0]]
        else:
            parts = [self._read_out(s[0][None], start + t, start + t + 1)
                     for t, s in enumerate(states[1 + first - start:], first - start)]
            values = np.concatenate([v for v, _ in parts])
            run.diff = [d[0] for _, d in parts]
        run.first_loss = first
        run.loss_values[first - start:] = values.tolist()
        return run

    # --- reverse -------------------------------------------------------------------------------
    def reverse(self, i, tape, grad, with_loss=True, keep=False):
        head = tape.head if with_loss else None
        return self._reverse_step(i, tape.inputs, tape.state, tape.cache, head, grad)

    def reverse_run(self, run: "_RunTape", grad):
        """Reverse a `record_run` window, last step first, each with its loss: the gradient of
        the window's first state. Where a block's steps have their read-out errors in one
        array, the read-out's gradients of the block are taken in one pass each (elementwise,
        or one GEMM per step: the same numbers as step by step)."""
        if not self._weights_read:
            self._read_weights()
        if self._rows is None:
            self._make_rows()
        states, caches, reverse, start = run.states, run.caches, self._reverse_step, run.start
        head = run.head
        dy_rows, readout_rows = self._rows[3], self._rows[4]
        i = start + len(caches) - 1
        while i >= start:
            j = i // self.block
            lo = max(j * self.block, start)  # the window's steps lo..i are in block j
            heads = run.heads(lo - start, i + 1 - start)
            rows = None
            if heads is not None:
                k0, k1 = lo - j * self.block, i + 1 - j * self.block
                readout_mse_grad(heads, self._scale, out=dy_rows[k0:k1])
                rows = _outer(dy_rows[k0:k1], self._W_yT, out=readout_rows[k0:k1])
            for step in range(i, lo - 1, -1):
                t = step - start
                grad = reverse(step, states[t], states[t + 1], caches[t], head(t), grad,
                               None if rows is None else rows[step - lo])
            i = lo - 1
        return grad

    def _reverse_step(self, i, state, new_state, cache, head, grad, readout=None):
        """Step i's reverse from its states, its core's cache and its read-out's head (None:
        no loss, or its loss left out): the gradient of state i. `readout`: the read-out's
        share of dh, already taken with its dy (`reverse_run`)."""
        k, first = self._row(i)
        h_rows, da_rows, du_rows, dy_rows, _ = self._rows
        dnew = [None] * len(new_state) if grad is None else list(grad)
        if head is not None:
            if readout is not None:
                dh = readout
            else:
                dy = dy_rows[k]
                if self._mse:
                    readout_mse_grad(head, self._scale, out=dy)
                else:
                    dy[...] = head.backward(np.asarray(self._scale, dy.dtype))
                dh = _outer(dy, self._W_yT, out=h_rows[-1])  # the last row is scratch
            if dnew[0] is not None:
                dh += dnew[0]
            dnew[0] = dh
        else:
            dy_rows[k].fill(0)
        if grad is None:
            dnew = [np.zeros_like(s) if g is None else g for s, g in zip(new_state, dnew)]
        da, du, direct = self.core.backward(dnew, state, cache, da_rows[k],
                                            None if du_rows is None else du_rows[k])
        if self._W_hT is None:  # dfa: the projected read-out errors of this and later steps
            dh = dnew[0].copy()
        else:
            dh = du @ self._W_hT
            if direct[0] is not None:
                dh += direct[0]
        h_rows[k] = state[0]
        if first:
            h_rows[k + 1] = new_state[0]  # the read-out's input for the run's last step
        if k == 0:
            self._add_run()
        return (dh, *direct[1:])

    def _row(self, i: int) -> tuple[int, bool]:
        """Step i's row in the block buffers, and whether it starts a new run of rows."""
        j, k = divmod(i, self.block)
        run = self._run
        if run is not None:
            if run[0] == j and run[1] == k + 1:
                run[1] = k
                return k, False
            self._add_run()
        if self._rows is None:
            self._make_rows()
        self._run = [j, k, k]
        return k, True

    def _make_rows(self) -> None:
        """The reverse's block buffers: states (K + 2 rows, the last scratch), a and u
        gradients, read-out gradients, and the read-out's share of dh for `reverse_run`."""
        K, B = self._projection.shape[:2]
        G, dtype, H = self._projection.shape[2], self._projection.dtype, self.model.hidden_size
        self._rows = (np.empty((K + 2, B, H), dtype), np.empty((K, B, G), dtype),
                      np.empty((K, B, G), dtype) if self.core.own_du else None,
                      np.empty((K, B, self.model.output_size), dtype),
                      np.empty((K, B, H), dtype))

    def _add_run(self) -> None:
        """Add the reversed rows' parameter (and input) gradients: one GEMM per weight."""
        j, lo, hi = self._run
        self._run = None
        n, B = hi - lo + 1, self.batch
        start = j * self.block + lo
        h_rows, da_rows, du_rows, dy_rows, _ = self._rows
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
    """a @ b into `out`, a (B, O) or stacked (n, B, O); with one column in `a` (a single
    read-out) the product of the columns and rows is the same numbers, 3-4x faster than
    BLAS's GEMM at inner size 1 (and elementwise: the same bits however many rows)."""
    if a.shape[-1] == 1:
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


class _RunTape:
    """What `FusedSequenceChain.record_run` keeps of a window of n steps from `start`: its
    n + 1 states, the cores' caches, `pre` (the tanh RNN's first n - 1 new states in one
    (n - 1, B, H) buffer; empty for the other cells) and each loss step's read-out error
    (B, O) (the tanh RNN's read out in one pass: rows of one array `errors`, but for the last
    step's)."""

    __slots__ = ("start", "states", "caches", "pre", "diff", "errors", "first_loss",
                 "loss_values")

    def __init__(self, start: int, state, n: int, pre: np.ndarray):
        self.start, self.states, self.caches, self.pre = start, [state], [], pre
        self.diff, self.first_loss, self.loss_values = [], start + n, [0.0] * n
        self.errors = None  # (m, B, O): the errors of loss steps first_loss.. in one array

    def heads(self, t0: int, t1: int) -> np.ndarray | None:
        """The read-out errors of steps start + t0 .. start + t1 - 1 as one (t1 - t0, B, O)
        array, if they are rows of `errors` (None otherwise: take them step by step)."""
        f = self.first_loss - self.start
        if self.errors is None or t0 < f or t1 - f > len(self.errors):
            return None
        return self.errors[t0 - f:t1 - f]

    @property
    def state(self):
        """The window's last state: the executor's current state once it is recorded."""
        return self.states[-1]

    def head(self, t: int):
        """Step start + t's read-out error (B, O), None for a step without loss."""
        t -= self.first_loss - self.start
        return None if t < 0 else self.diff[t]

    def arrays(self) -> list[np.ndarray]:
        """Every array the window keeps alive, rows of `pre` and `errors` named once by
        their buffer (the ledger counts buffers; walking thousands of views costs)."""
        pre, errors = self.pre, self.errors
        found = [pre] if errors is None else [pre, errors]
        found.extend(a for part in (self.states, self.caches) for s in part for a in s
                     if a.base is not pre)
        found.extend(d for d in self.diff if errors is None or d.base is not errors)
        return found
