"""The 2018 Data Science Bowl nuclei set (BBBC038, 664 images with nucleus masks at 128x128;
``<data>/nuclei_dsb2018/PROVENANCE.md``) as train/test arrays at a chosen resolution."""

from __future__ import annotations

import os
import zipfile
import zlib
from typing import NamedTuple

import jax
import numpy as np

from jnas.data.paths import find_data_file

NUCLEI = "nuclei_dsb2018/dsb2018_nuclei_128.npz"
NUCLEI_SOURCE = (
    "The 2018 Data Science Bowl stage-1 training set (BBBC038v1, Caicedo et al., Nature Methods 2019; CC0) is "
    "published at https://bbbc.broadinstitute.org/BBBC038; the file holds images (n, 128, 128, 3) uint8 and "
    "masks (n, 128, 128) uint8 (see nuclei_dsb2018/PROVENANCE.md for the conversion)."
)
SIDE = 128


class SegData(NamedTuple):
    x: np.ndarray  # (n, r, r, 3) float32, standardised with the training split's channel mean/std
    y: np.ndarray  # (n, r, r) float32 in {0, 1}
    index: np.ndarray  # (n,) int positions in the file


def read_nuclei(data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Raw ``(images uint8 (n, 128, 128, 3), masks uint8 (n, 128, 128))``; a missing, damaged or
    malformed file is an error naming it and saying where the data comes from."""
    path = find_data_file(NUCLEI, data_dir, how_to_get=NUCLEI_SOURCE)
    try:
        with np.load(path) as d:
            missing = {"images", "masks"} - set(d.files)
            if missing:
                raise ValueError(f"{path} is malformed: keys {sorted(missing)} missing (has {d.files}); {NUCLEI_SOURCE}")
            x, y = d["images"], d["masks"]
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{path} is damaged and cannot be read ({type(err).__name__}: {err}); {NUCLEI_SOURCE}") from None
    if x.ndim != 4 or x.shape[1:] != (SIDE, SIDE, 3) or y.shape != x.shape[:3]:
        raise ValueError(f"{path} is malformed: images {x.shape}, masks {y.shape}; expected (n, {SIDE}, {SIDE}, 3) "
                         f"and (n, {SIDE}, {SIDE})")
    return x, y


def downsample(x: np.ndarray, resolution: int) -> np.ndarray:
    """Mean-pool ``(n, 128, 128, ...)`` to ``resolution`` (an integer factor of 128), else resize
    with an area filter (``jax.image.resize``, linear with antialiasing)."""
    side = x.shape[1]
    if resolution == side:
        return x.astype(np.float32)
    if side % resolution == 0:
        f = side // resolution
        return x.reshape(x.shape[0], resolution, f, resolution, f, *x.shape[3:]).mean((2, 4)).astype(np.float32)
    shape = (x.shape[0], resolution, resolution, *x.shape[3:])
    return np.asarray(jax.image.resize(x.astype(np.float32), shape, "linear", antialias=True))


def load_nuclei(data_dir: str | os.PathLike | None = None, resolution: int = 64, split_seed: int = 0,
                n_test: int = 100) -> tuple[SegData, SegData]:
    """Train and test splits: a random permutation of the image indices drawn from
    ``split_seed`` (numpy's PCG64), the last ``n_test`` held out. Masks are pooled and
    thresholded at 0.5; images are standardised per channel with the training split's
    statistics.

    Raises:
      ValueError: a bad resolution or ``n_test``; FileNotFoundError: the file is missing.
    """
    if not 8 <= resolution <= SIDE:
        raise ValueError(f"resolution must be in 8..{SIDE}, got {resolution}")
    x, y = read_nuclei(data_dir)
    if not 1 <= n_test < len(x):
        raise ValueError(f"n_test must be in 1..{len(x) - 1} (the file holds {len(x)} images), got {n_test}")
    order = np.random.default_rng(split_seed).permutation(len(x))
    tr, te = np.sort(order[:-n_test]), np.sort(order[-n_test:])
    xs = downsample(x.astype(np.float32) / 255.0, resolution)
    ys = (downsample(y.astype(np.float32), resolution) >= 0.5).astype(np.float32)
    mean, std = xs[tr].mean((0, 1, 2)), xs[tr].std((0, 1, 2)) + 1e-6
    xs = (xs - mean) / std
    return SegData(xs[tr], ys[tr], tr), SegData(xs[te], ys[te], te)
