"""Remedies for DARTS's collapse that act on the search's record rather than its step.

:func:`early_stop` is RobustDARTS's DARTS-ES rule (Zela et al., ICLR 2020): the dominant
eigenvalue of the validation-loss Hessian in alpha rises as the derived cell fills with
parameter-free operations, so stop when its local average has grown by more than
``factor`` over ``delta`` epochs and return the cell from ``delta`` epochs before. The
eigenvalues come from :func:`jnas.oneshot.search.make_alpha_curvature`. (SDARTS's random
smoothing is a step option, ``SearchConfig.alpha_noise``; P-DARTS's skip dropout is the
step's ``drop_rate``.)
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np


class EarlyStop(NamedTuple):
    epoch: int  # 1-based epoch whose derived cell is returned
    decided_at: int  # 1-based epoch at which the rule fired (only eigenvalues up to it were used)


def early_stop(eigenvalues: Sequence[float], window: int = 5, delta: int = 5, factor: float = 1.3,
               start: int = 10) -> EarlyStop | None:
    """DARTS-ES on per-epoch eigenvalues (``eigenvalues[e - 1]`` measured after epoch ``e``).

    The local average at epoch ``c`` is the mean over the centred window ``c - window // 2
    .. c + window // 2``, known once epoch ``c + window // 2`` is done. At each epoch ``t``
    the newest average (``c = t - window // 2``) is compared with the one ``delta`` epochs
    before; the search stops at the first ``t`` where the ratio exceeds ``factor`` and
    ``c - delta >= start``, and returns the cell of epoch ``c - delta``. None: the rule never
    fired (the last cell stands). Defaults: RobustDARTS's factor 1.3 (the paper's 0.75 ratio
    inverted), window 5, and ``delta`` 5 epochs as in the paper (its code compares averages
    4 eigenvalue computations apart, one every 2 epochs); ``start`` 10 as the code's
    ``es_start_epoch``.

    Raises:
      ValueError: a window < 1 or even, delta < 1, factor <= 0, or a non-finite eigenvalue.
    """
    if window < 1 or window % 2 == 0 or delta < 1 or factor <= 0:
        raise ValueError(f"early_stop needs an odd window >= 1, delta >= 1 and factor > 0; got {window}, {delta}, {factor}")
    ev = np.asarray(eigenvalues, np.float64)
    if not np.all(np.isfinite(ev)):
        raise ValueError(f"early_stop: non-finite eigenvalue at epochs {(np.flatnonzero(~np.isfinite(ev)) + 1).tolist()}")
    half = window // 2

    def local(c: int) -> float:  # 1-based centre epoch
        return float(ev[c - 1 - half: c + half].mean())

    for t in range(1, len(ev) + 1):
        c = t - half
        if c - delta < max(start, half + 1):
            continue
        if local(c) / local(c - delta) > factor:
            return EarlyStop(c - delta, t)
    return None
