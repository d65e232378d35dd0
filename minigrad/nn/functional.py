"""`minigrad.nn.functional` is `minigrad.functional`, under the path PyTorch gives it
(`torch.nn.functional`), so `from minigrad.nn import functional as F` reads as PyTorch code does."""
from minigrad.functional import *  # noqa: F403
from minigrad.functional import __all__  # noqa: F401
