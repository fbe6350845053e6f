"""Datasets by name (TFDS copies or local real-image arrays), splits, augmentation, batching."""

from jnas.data.attributes import ATTRIBUTES, Attribute, attributes
from jnas.data.datasets import DATASETS, DatasetSpec, ImageData, load
from jnas.data.local import load_cifar10_subset, load_mnist_subset
from jnas.data.paths import ENV_VAR, find_data_file
from jnas.data.pipeline import augment, draw_train_val, epoch_batches, normalize, num_batches, resize, split, subset

__all__ = [
    "ATTRIBUTES", "Attribute", "attributes", "DATASETS", "DatasetSpec", "ENV_VAR", "ImageData", "augment", "draw_train_val", "epoch_batches", "find_data_file", "load",
    "load_cifar10_subset", "load_mnist_subset", "normalize", "num_batches", "resize", "split", "subset",
]
