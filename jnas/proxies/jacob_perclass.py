"""Per-class Jacobian correlation score of guided evolution (GEA; Lopes et al. 2022,
after EPE-NAS, Lopes et al. 2021).

For each class k present in the batch, with C_k the correlation matrix of the Jacobians
of its images, E_k = sum_ij log(|C_k[i, j]| + t), t = 1e-5 (divided by the number of
rows of C_k when the batch has more than tau = 100 classes). The score is
sum_k |E_k| for K <= tau classes, else the mean pairwise |E_i - E_j| over i < j.

Departure: the reference code in the survey (docs/references.md) sums the pairwise term over ordered pairs and
divides by the number of classes; jnas follows the formula (unordered pairs, divided by
the number of pairs). The two differ by a positive factor, so rankings agree. The
K <= tau branch, the one used for CIFAR-10, is identical.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jnas.proxies.base import Proxy
from jnas.proxies.jacobian import batch_jacobian, row_correlation

T = 1e-5
TAU = 100


def perclass_score(jac, y, num_classes: int):
    """Score from Jacobians ``(b, d)`` and labels ``(b,)`` in ``0..num_classes-1``."""
    # corrcoef is pairwise, so the correlation of two images does not depend on the others:
    # one (b, b) matrix masked per class gives every per-class matrix.
    logc = jnp.log(jnp.abs(row_correlation(jac)) + T)
    onehot = jax.nn.one_hot(y, num_classes, dtype=logc.dtype)  # (b, K)
    counts = onehot.sum(0)
    present = counts > 0
    e = jnp.einsum("ik,ij,jk->k", onehot, logc, onehot)
    n_present = present.sum()
    many = n_present > TAU
    e = jnp.where(many, e / jnp.maximum(counts, 1.0), e)
    simple = jnp.sum(jnp.where(present, jnp.abs(e), 0.0))
    pair = present[:, None] & present[None, :] & jnp.triu(jnp.ones((num_classes, num_classes), bool), 1)
    n_pairs = jnp.maximum(pair.sum(), 1)
    pairwise = jnp.sum(jnp.where(pair, jnp.abs(e[:, None] - e[None, :]), 0.0)) / n_pairs
    return jnp.where(many, pairwise, simple)


def jacob_perclass(net, variables, arch, x, y):
    return perclass_score(batch_jacobian(net, variables, arch, x), y, net.num_classes)


PROXY = Proxy("jacob_perclass", jacob_perclass, batch_size=64, reverse_only=True)
