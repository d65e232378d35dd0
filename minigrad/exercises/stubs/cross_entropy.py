"""Exercise: cross-entropy's backward (fused with its log-softmax), as two terms.

Fill in `backward_terms` below, then run

    python -m minigrad.exercises check cross_entropy --file <this file>

The forward is given: the mean over the rows of -log softmax(logits)[target], what minigrad's
cross_entropy computes with its defaults (no class weights, nothing ignored, no label smoothing).
It keeps what backward needs: p = softmax(logits) and the targets.

    loss = (1/N) sum_n [ logsumexp(logits_n) - logits_n[t_n] ]      ()  a scalar
    logsumexp(z) = log sum_v e^(z_v)

Shapes: logits, p (N, V); targets t (N,) integers in [0, V); dout () (the loss is a scalar, so its
gradient is a 0-d array: scale by it).

When you are done (or stuck), the answer is minigrad/ops/softmax.py, CrossEntropy.backward.
"""
from __future__ import annotations

from minigrad.autograd import Function
from minigrad.backend import Array, get_array_module


class CrossEntropy(Function):
    def forward(self, logits: Array, targets: Array) -> Array:
        xp = get_array_module(logits)
        n = logits.shape[0]
        shifted = logits - logits.max(axis=1, keepdims=True)  # (N, V) logsumexp is unchanged by a shift
        log_p = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))  # (N, V) log softmax
        self.p, self.targets = xp.exp(log_p), targets  # (N, V), (N,)
        return -log_p[xp.arange(n), targets].mean()  # ()

    # The loss has two parts, and the logits reach each one way. One term per part:
    #   dlogits_via_logsumexp  (N, V)   d logsumexp(z) / d z_v = ?   (it is something you saved)
    #   dlogits_via_target     (N, V)   -logits_n[t_n] touches one entry per row: zero elsewhere
    #   dlogits                (N, V)   both together
    # Each term carries the 1/N of the mean and the scalar dout. xp = get_array_module(p) is NumPy
    # or CuPy, whichever holds the data (xp.zeros_like, xp.arange).
    #
    # Check yourself: each row of dlogits sums to 0.
    def backward_terms(self, dout: Array) -> dict[str, Array]:
        raise NotImplementedError("fill in backward_terms")  # delete this line, then fill in each term
        # saved by forward: self.p (N, V), self.targets (N,)
        dlogits_via_logsumexp = ...  # (N, V)
        dlogits_via_target = ...  # (N, V)
        dlogits = ...  # (N, V)
        return {"dlogits_via_logsumexp": dlogits_via_logsumexp, "dlogits_via_target": dlogits_via_target,
                "dlogits": dlogits}

    def backward(self, dout: Array) -> tuple[Array]:
        """Given: what the engine calls; one gradient per input of forward, taken from your terms."""
        return (self.backward_terms(dout)["dlogits"],)
