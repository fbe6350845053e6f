"""Datasets: local real-image arrays and data-root resolution."""

from jnas.data.local import load_cifar10_subset, load_mnist_subset
from jnas.data.paths import ENV_VAR, find_data_file

__all__ = ["ENV_VAR", "find_data_file", "load_cifar10_subset", "load_mnist_subset"]
