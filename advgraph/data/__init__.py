"""Datasets: IDX (MNIST, Fashion-MNIST), toy data made by code, a user's npz. No torch."""

from .registry import Splits, load_data, sample_shape

__all__ = ["Splits", "load_data", "sample_shape"]
