"""minigrad.utils, as torch.utils: `data` (Dataset, DataLoader, random_split...).

Read next: data.py.
"""
from minigrad.utils import data

__all__ = ["data"]
