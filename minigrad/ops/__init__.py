"""Every differentiable op, one module per family, each op's forward beside its backward.

Reading order: elementwise, reduce, shape, matmul, softmax, layernorm,
embedding, dropout, attention.
"""
