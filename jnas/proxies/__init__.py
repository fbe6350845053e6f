"""Zero-cost proxies: score architectures at initialisation, vectorised across architectures.

>>> from jnas import proxies
>>> proxies.names()
['fisher', 'flops', 'grad_norm', 'grasp', 'jacob_cov', 'jacob_perclass', 'naswot', 'params', 'snip', 'synflow']
>>> # scores = proxies.score("naswot", archs, (x, y), jax.random.key(0))   # -> (n,) numpy
"""

from __future__ import annotations

import jax

from jnas.proxies import cost, fisher, grad_norm, grasp, jacob_cov, jacob_perclass, naswot, snip, synflow
from jnas.proxies import scoring
from jnas.proxies.base import Proxy
from jnas.proxies.scoring import INITS, MODES, SELECTS, ScoringConfig, default_conv_grads, default_conv_library, default_mode, score_one

PROXIES: dict[str, Proxy] = {
    p.name: p
    for p in (
        naswot.PROXY,
        jacob_cov.PROXY,
        jacob_perclass.PROXY,
        synflow.PROXY,
        snip.PROXY,
        grasp.PROXY,
        grad_norm.PROXY,
        fisher.PROXY,
        cost.PARAMS,
        cost.FLOPS,
    )
}


def names() -> list[str]:
    return sorted(PROXIES)


def get(name: str) -> Proxy:
    """The proxy registered as ``name``; ValueError listing the valid names otherwise."""
    if name not in PROXIES:
        raise ValueError(f"unknown proxy {name!r}; valid proxies are {names()}")
    return PROXIES[name]


def parse_names(spec: str) -> list[str]:
    """``"all"`` or a comma-separated list of proxy names, each validated."""
    if spec.strip() == "all":
        return names()
    chosen = [s.strip() for s in spec.split(",") if s.strip()]
    if not chosen:
        raise ValueError(f"no proxy named in {spec!r}; valid proxies are {names()} or 'all'")
    for n in chosen:
        get(n)
    return chosen


def score(name: str, archs, batch, key: jax.Array, **kwargs):
    """``score(name, archs, (x, y), key, mode=..., chunk=...) -> (n,)`` numpy scores.

    See :func:`jnas.proxies.scoring.score` for the arguments.
    """
    return scoring.score(get(name), archs, batch, key, **kwargs)


__all__ = ["INITS", "MODES", "SELECTS", "PROXIES", "Proxy", "ScoringConfig", "default_conv_grads", "default_conv_library", "default_mode", "get", "names", "parse_names", "score", "score_one"]
