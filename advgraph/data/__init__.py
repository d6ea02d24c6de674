"""Datasets: IDX (MNIST, Fashion-MNIST), CIFAR-10, TFD, toy data made by code, a user's npz.
No torch."""

from .datasets import Dataset, data_info, dataset_for
from .splits import Splits

__all__ = ["Dataset", "Splits", "data_info", "dataset_for"]
