"""minigrad.utils, as torch.utils: `data` (Dataset, DataLoader, random_split...).

Reading order: data.py.
"""
from minigrad.utils import data

__all__ = ["data"]
