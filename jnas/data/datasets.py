"""Image-classification datasets by name: a prepared tensorflow-datasets copy, else jnas's local arrays.

``load(name, split, data_dir)`` returns the raw uint8 images and int32 labels of one split.
It looks, in order, for

1. a prepared TFDS copy (``<root>/tfds/<name>/<version>/``, read with ``tfds.data_source``,
   which needs neither tensorflow nor internet; ``<root>`` is ``data_dir``, then ``$JNAS_DATA``,
   then ``$TFDS_DATA_DIR`` / ``~/tensorflow_datasets`` as the folder itself), and
2. the local real-image arrays beside the project (``cifar10_subset/``, ``mnist/``).

``source="tfds"`` or ``"local"`` forces one; ``download=True`` lets TFDS fetch and prepare
the data (that needs internet and tensorflow). Preprocessing lives in :mod:`jnas.data.pipeline`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from jnas.data import local
from jnas.data.paths import ENV_VAR


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Static facts of a dataset: TFDS name, image shape, classes, normalisation, local copy."""

    tfds_name: str
    shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    local_file: str | None = None
    source: str = ""


DATASETS: dict[str, DatasetSpec] = {
    # Mean/std are the training-set statistics used by NAS-Bench-201 (CIFAR) and torchvision (MNIST).
    "cifar10": DatasetSpec("cifar10", (32, 32, 3), 10, tuple(local.CIFAR10_MEAN), tuple(local.CIFAR10_STD),
                           local.CIFAR10_SUBSET, local.CIFAR10_SOURCE),
    "cifar100": DatasetSpec("cifar100", (32, 32, 3), 100, (129.3 / 255, 124.1 / 255, 112.4 / 255),
                            (68.2 / 255, 65.4 / 255, 70.4 / 255), None,
                            "CIFAR-100 (Krizhevsky 2009): https://www.cs.toronto.edu/~kriz/cifar.html"),
    "mnist": DatasetSpec("mnist", (28, 28, 1), 10, (0.1307,), (0.3081,), local.MNIST_SUBSET, local.MNIST_SOURCE),
    "fashion_mnist": DatasetSpec("fashion_mnist", (28, 28, 1), 10, (0.2860,), (0.3530,), None,
                                 "Fashion-MNIST (Xiao et al. 2017): https://github.com/zalandoresearch/fashion-mnist"),
}
SOURCES = ("auto", "tfds", "local")


@dataclasses.dataclass(frozen=True)
class ImageData:
    """One split: ``x`` uint8 ``(n, h, w, c)``, ``y`` int32 ``(n,)``, and where it came from."""

    x: np.ndarray
    y: np.ndarray
    spec: DatasetSpec
    origin: str

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: np.ndarray) -> "ImageData":
        """The examples at ``idx`` (a new ImageData; arrays are gathered, never shared views)."""
        return dataclasses.replace(self, x=self.x[idx], y=self.y[idx])


def load(
    name: str, split: str = "train", data_dir: str | os.PathLike | None = None, *,
    source: str = "auto", download: bool = False,
) -> ImageData:
    """Load one split of a named dataset as uint8 arrays.

    Args:
      name: one of :data:`DATASETS`.
      split: ``"train"`` or ``"test"``.
      data_dir: data root (argument / ``--data-dir``); ``$JNAS_DATA`` otherwise.
      source: ``"auto"`` (TFDS copy, else local arrays), ``"tfds"`` or ``"local"``.
      download: let TFDS download and prepare missing data (internet and tensorflow needed).
    Raises:
      ValueError: unknown dataset, split or source. FileNotFoundError: no copy found, naming
      every place searched and how to get the data.

    Example:
      >>> data = load("cifar10", "train", "../shared/data")   # local subset offline
      >>> data.x.shape, data.x.dtype
      ((5085, 32, 32, 3), dtype('uint8'))
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets are {sorted(DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; valid splits are ['train', 'test']")
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; valid sources are {list(SOURCES)}")
    spec = DATASETS[name]
    searched: list[str] = []
    if source in ("auto", "tfds"):
        root = _tfds_root(spec, data_dir, searched, download)
        if root is not None:
            return _read_tfds(spec, split, root, download)
        if source == "tfds":
            raise FileNotFoundError(_missing(name, searched, spec))
    if spec.local_file is None:
        raise FileNotFoundError(_missing(name, searched, spec))
    try:
        x, y = local.read_split(spec.local_file, spec.source, data_dir, split, _local_shape(spec))
    except FileNotFoundError as err:
        raise FileNotFoundError(_missing(name, searched, spec) + f"\nLocal copy: {err}") from None
    x = x.reshape((-1, *spec.shape))
    return ImageData(x, y, spec, f"local:{spec.local_file}")


def _local_shape(spec: DatasetSpec) -> tuple[int, ...]:
    """Shape of one image as stored in the local npz (MNIST has no channel axis there)."""
    return spec.shape[:2] if spec.shape[2] == 1 else spec.shape


def tfds_roots(data_dir: str | os.PathLike | None) -> list[tuple[str, Path | None]]:
    """Folders that may hold prepared TFDS datasets, with a label saying where each came from."""
    default = os.environ.get("TFDS_DATA_DIR") or str(Path("~/tensorflow_datasets").expanduser())
    return [
        ("argument / --data-dir", Path(data_dir) / "tfds" if data_dir else None),
        (f"${ENV_VAR}", Path(os.environ[ENV_VAR]) / "tfds" if os.environ.get(ENV_VAR) else None),
        ("TFDS default", Path(default)),
    ]


def _tfds_root(spec: DatasetSpec, data_dir, searched: list[str], download: bool) -> Path | None:
    """First root holding a prepared ``spec.tfds_name`` (any version), or None."""
    for label, root in tfds_roots(data_dir):
        if root is None:
            searched.append(f"  TFDS copy under {label}: not set")
            continue
        folder = root / spec.tfds_name
        if any(folder.glob("*/dataset_info.json")):
            return root
        searched.append(f"  TFDS copy under {label}: {folder} (no prepared version)")
    if download:  # TFDS prepares it under the first root that is set
        return next(root for _, root in tfds_roots(data_dir) if root is not None)
    return None


def _read_tfds(spec: DatasetSpec, split: str, root: Path, download: bool) -> ImageData:
    """Read a whole split through ``tfds.data_source`` (random access, no tensorflow)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ImportError(
            f"a prepared TFDS copy of {spec.tfds_name!r} is under {root}, but tensorflow-datasets is not "
            "installed; pip install 'jnas[tfds]', or pass source='local'"
        ) from None
    source = tfds.data_source(spec.tfds_name, split=split, data_dir=str(root), download=download)
    n = len(source)
    x = np.empty((n, *spec.shape), np.uint8)
    y = np.empty((n,), np.int32)
    ids = []
    for start in range(0, n, 1024):
        for i, ex in enumerate(source.__getitems__(list(range(start, min(start + 1024, n))))):
            x[start + i] = np.asarray(ex["image"]).reshape(spec.shape)
            y[start + i] = int(ex["label"])
            ids.append(ex.get("id", b""))
    # TFDS shuffles records when it prepares a dataset; sort by example id (where the dataset
    # has one) so the order does not depend on how the copy was written.
    if all(ids):
        order = np.argsort(np.asarray(ids), kind="stable")
        x, y = x[order], y[order]
    return ImageData(x, y, spec, f"tfds:{root / spec.tfds_name}")


def _missing(name: str, searched: list[str], spec: DatasetSpec) -> str:
    local_note = (
        f"  local array file {spec.local_file!r} under the data root" if spec.local_file
        else "  (jnas ships no local array copy of this dataset)"
    )
    return (
        f"jnas could not find dataset {name!r}. Searched:\n" + "\n".join(searched + [local_note]) + "\n"
        f"{spec.source}\nGet it with tensorflow-datasets on a machine with internet "
        f"(python -c \"import tensorflow_datasets as tfds; tfds.builder('{spec.tfds_name}', data_dir='DIR/tfds')"
        f".download_and_prepare(file_format='array_record')\"), then pass data_dir=DIR / --data-dir DIR "
        f"or set {ENV_VAR}=DIR."
    )


__all__ = ["DATASETS", "DatasetSpec", "ImageData", "load", "tfds_roots"]
