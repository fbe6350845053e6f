"""Local real-image arrays shipped beside the project (``<data>/cifar10_subset``, ``<data>/mnist``).

These are the offline copies a CPU run uses; each folder's PROVENANCE.md says how they
were made. Images come back as float32 NHWC in [0, 1] and labels as int32.
"""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

from jnas.data.paths import find_data_file

CIFAR10_SUBSET = "cifar10_subset/cifar10_subset.npz"
CIFAR10_SOURCE = (
    "CIFAR-10 (Krizhevsky 2009) is published at https://www.cs.toronto.edu/~kriz/cifar.html; the "
    "subset file holds real CIFAR-10 images as uint8 arrays x_train/y_train/x_test/y_test (NHWC)."
)
# Per-channel mean/std of the CIFAR-10 training set, as used by NAS-Bench-201.
CIFAR10_MEAN = np.array([x / 255 for x in (125.3, 123.0, 113.9)], np.float32)
CIFAR10_STD = np.array([x / 255 for x in (63.0, 62.1, 66.7)], np.float32)


MNIST_SUBSET = "mnist/mnist_subset.npz"
MNIST_SOURCE = (
    "MNIST (LeCun et al. 1998) is published at https://yann.lecun.com/exdb/mnist/; the subset "
    "file holds real MNIST digits as uint8 arrays x_train/y_train/x_test/y_test (n, 28, 28)."
)


def load_cifar10_subset(
    data_dir: str | os.PathLike | None = None, split: str = "train", normalize: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Real CIFAR-10 images from the local subset file.

    Args:
      data_dir: data root holding ``cifar10_subset/cifar10_subset.npz``.
      split: ``"train"`` or ``"test"``.
      normalize: subtract the CIFAR-10 mean and divide by its std (NB201 preprocessing).
    Returns:
      ``(x, y)``: float32 ``(n, 32, 32, 3)`` and int32 ``(n,)``.
    Raises:
      ValueError: unknown split or malformed file. FileNotFoundError: file missing.
    """
    x, y = _load_split(CIFAR10_SUBSET, CIFAR10_SOURCE, data_dir, split, (32, 32, 3))
    if normalize:
        x = (x - CIFAR10_MEAN) / CIFAR10_STD
    return x, y


def load_mnist_subset(data_dir: str | os.PathLike | None = None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Real MNIST digits from the local subset file: float32 ``(n, 28, 28, 1)`` in [0, 1], int32 labels.

    Raises:
      ValueError: unknown split or malformed file. FileNotFoundError: file missing.
    """
    x, y = _load_split(MNIST_SUBSET, MNIST_SOURCE, data_dir, split, (28, 28))
    return x[..., None], y


def _load_split(
    relpath: str, source: str, data_dir: str | os.PathLike | None, split: str, image_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """``x_{split}`` scaled to [0, 1] and ``y_{split}`` as int32 from an npz under the data root."""
    x, y = read_split(relpath, source, data_dir, split, image_shape)
    return x.astype(np.float32) / 255.0, y


def read_split(
    relpath: str, source: str, data_dir: str | os.PathLike | None, split: str, image_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Raw uint8 ``x_{split}`` and int32 ``y_{split}`` from an npz under the data root."""
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; valid splits are ['train', 'test']")
    path = find_data_file(relpath, data_dir, how_to_get=source)
    try:
        with np.load(path) as d:
            missing = {f"x_{split}", f"y_{split}"} - set(d.files)
            if missing:
                raise ValueError(f"{path} is malformed: keys {sorted(missing)} missing (has {d.files})")
            x, y = d[f"x_{split}"], d[f"y_{split}"]
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:  # truncated or overwritten file
        raise ValueError(f"{path} is damaged and cannot be read ({type(err).__name__}: {err}); {source}") from None
    if x.shape[1:] != image_shape or len(x) != len(y):
        raise ValueError(f"{path} is malformed: x_{split} {x.shape}, y_{split} {y.shape}; expected (n, {image_shape})")
    return x.astype(np.uint8), y.astype(np.int32)
