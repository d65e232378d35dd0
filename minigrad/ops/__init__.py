"""Every differentiable op, one module per family, each op's forward beside its backward.

Reading order: elementwise.py, reduce.py, shape.py, setitem.py (then ../inplace.py), matmul.py,
softmax.py, activation.py, loss.py, layernorm.py, rmsnorm.py, embedding.py, dropout.py, attention.py,
flash_attention.py, experts.py, quant.py.
"""
