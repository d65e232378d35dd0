"""Optimizers (SGD, Adam, AdamW) over flat parameter buffers, and learning-rate schedules.

Reading order: optimizer.py (groups and flat buffers), sgd.py, adam.py, lr_scheduler.py.
Gradient clipping is minigrad.nn.utils.clip_grad_norm_, as in PyTorch.
"""
from minigrad.optim.adam import Adam, AdamW
from minigrad.optim.lr_scheduler import warmup_cosine
from minigrad.optim.optimizer import Optimizer
from minigrad.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "warmup_cosine"]
