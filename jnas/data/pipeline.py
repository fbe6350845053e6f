"""Preprocessing and batching: seeded splits and subsets, normalisation, the standard CIFAR
augmentation (pad 4, random 32x32 crop, horizontal flip), and deterministic epoch batches.

Every random choice comes from an explicit key: the same key gives the same split, the same
order and the same crops, which is what makes a resumed training run identical to an
uninterrupted one.
"""

from __future__ import annotations

from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, UInt8

from jnas.data.datasets import ImageData


def split(data: ImageData, key: PRNGKeyArray, fraction: float = 0.5) -> tuple[ImageData, ImageData]:
    """Shuffle once and cut: ``(first fraction, rest)``.

    With ``fraction=0.5`` this is NAS-Bench-201's ``cifar10-valid`` protocol (train on one half
    of the training set, validate on the other) and DARTS's search split. NB201 used one fixed
    random split file; jnas draws the split from ``key``.
    """
    first, rest = split_indices(len(data), key, fraction)
    return data.take(first), data.take(rest)


def draw_train_val(full: ImageData, n_train: int, n_val: int, key: PRNGKeyArray) -> tuple[ImageData, ImageData]:
    """``n_train`` training and ``n_val`` validation examples drawn (seeded, disjoint) from
    ``full`` (a training split: the test split stays untouched for the final score)."""
    if n_train < 1 or n_val < 1 or n_train + n_val > len(full):
        raise ValueError(f"need n_train >= 1, n_val >= 1 and n_train + n_val <= {len(full)} (the examples available), "
                         f"got n_train={n_train}, n_val={n_val}")
    pool, _ = split(full, jax.random.fold_in(key, 0), (n_train + n_val) / len(full))
    return split(pool, jax.random.fold_in(key, 1), n_train / len(pool))


def split_indices(n: int, key: PRNGKeyArray, fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays of a seeded random cut of ``range(n)`` into ``fraction`` and the rest."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"split fraction must be in (0, 1), got {fraction}")
    perm = np.asarray(jax.random.permutation(key, n))
    cut = int(round(fraction * n))
    return perm[:cut], perm[cut:]


def subset(data: ImageData, fraction: float, key: PRNGKeyArray) -> ImageData:
    """A seeded random ``fraction`` of the examples (the data-fraction low-fidelity knob)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"data fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return data
    return split(data, key, fraction)[0]


def normalize(x: UInt8[Array, "b h w c"], mean, std) -> Float[Array, "b h w c"]:
    """uint8 pixels to float32 ``(x / 255 - mean) / std`` per channel."""
    return (jnp.asarray(x, jnp.float32) / 255.0 - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def resize(x: Float[Array, "b h w c"], resolution: int | None) -> Float[Array, "b r r c"]:
    """Bilinear resize to ``resolution`` x ``resolution`` (the resolution low-fidelity knob)."""
    if resolution is None or resolution == x.shape[1]:
        return x
    return jax.image.resize(x, (x.shape[0], resolution, resolution, x.shape[3]), "bilinear")


def augment(key: PRNGKeyArray, x: Float[Array, "b h w c"], pad: int = 4) -> Float[Array, "b h w c"]:
    """Zero-pad by ``pad``, crop back to ``h x w`` at a random offset, flip left-right with p = 1/2.

    Applied after normalisation, so the padding is zero in normalised units, as in
    torchvision's ``RandomCrop(32, padding=4)`` on a normalised tensor. Jittable.
    """
    b, h, w, c = x.shape
    k_off, k_flip = jax.random.split(key)
    offsets = jax.random.randint(k_off, (b, 2), 0, 2 * pad + 1)
    flips = jax.random.bernoulli(k_flip, 0.5, (b,))
    padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

    def one(img, off, flip):
        crop = jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, c))
        return jnp.where(flip, crop[:, ::-1], crop)

    return jax.vmap(one)(padded, offsets, flips)


def cutout(key: PRNGKeyArray, x: Float[Array, "b h w c"], size: int) -> Float[Array, "b h w c"]:
    """Zero a ``size x size`` square centred at a uniformly drawn pixel of each image, clipped
    at the border (DeVries & Taylor 2017, as in DARTS's evaluation: size 16 on CIFAR-10).
    Applied after normalisation, like the crop padding. Jittable."""
    b, h, w, _ = x.shape
    centre = jax.random.randint(key, (b, 2), 0, jnp.array([h, w]))
    rows, cols = jnp.arange(h)[None, :, None], jnp.arange(w)[None, None, :]
    lo = centre - size // 2
    inside = ((rows >= lo[:, 0, None, None]) & (rows < lo[:, 0, None, None] + size)
              & (cols >= lo[:, 1, None, None]) & (cols < lo[:, 1, None, None] + size))
    return jnp.where(inside[..., None], 0.0, x).astype(x.dtype)


def epoch_batches(
    data: ImageData, batch_size: int, key: PRNGKeyArray, epoch: int, *, shuffle: bool = True, drop_last: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches ``(x uint8, y int32)`` of one epoch, in an order fixed by ``(key, epoch)``.

    ``drop_last`` skips the final short batch (training); evaluation passes ``False`` and
    ``shuffle=False`` to see every example once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(data)
    order = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), n)) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield data.x[idx], data.y[idx]


def num_batches(n: int, batch_size: int, drop_last: bool = True) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)
