"""jacob_cov (Mellor et al. 2020, arXiv:2006.04647 v1; as benchmarked by Abdelfattah et al. 2021).

With ``v`` the eigenvalues of the correlation matrix of the per-image input Jacobians,
score = -sum(log(v + k) + 1 / (v + k)), k = 1e-5. Batch 64 as in Abdelfattah et al.
"""

from __future__ import annotations

import jax.numpy as jnp

from jnas.proxies.base import Proxy
from jnas.proxies.jacobian import batch_jacobian, row_correlation

K = 1e-5


def jacob_cov(net, variables, arch, x, y):
    corr = row_correlation(batch_jacobian(net, variables, arch, x))
    v = jnp.linalg.eigvalsh(corr)  # the matrix is symmetric: real eigenvalues
    return -jnp.sum(jnp.log(v + K) + 1.0 / (v + K))


PROXY = Proxy("jacob_cov", jacob_cov, batch_size=64, reverse_only=True, cpu_conv_library="eigen")
