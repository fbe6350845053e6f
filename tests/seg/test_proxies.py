"""Dense proxies on the elastic supernet: a candidate scored through the supernet equals the
same proxy on its extracted stand-alone network (the masks hide exactly the inactive weights),
and every batching mode gives the loop's scores."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.nets.hybrid import HybridUNet, extract, standalone
from jnas.seg import proxies as P
from jnas.spaces.hybrid import TINY

ARCHS = ["r16|conv:d2w4h1m1k3|transformer:d2w16h4m2k3", "r16|mbconv:d1w8h2m2k3|mbconv:d2w8h1m1k1",
         "r16|mbconv:d2w4h4m1k1|conv:d1w16h2m2k3"]


@pytest.fixture(scope="module")
def setup():
    key = jax.random.key(0)
    x = np.asarray(jax.random.normal(key, (4, 16, 16, 3)))
    y = (np.asarray(jax.random.uniform(jax.random.key(1), (4, 16, 16))) > 0.6).astype(np.float32)
    params = P.init_params(TINY, key, 16)
    archs = np.stack([TINY.from_string(a) for a in ARCHS])
    return key, x, y, params, archs


def _alone(name, setup, i):
    key, x, y, params, archs = setup
    net = standalone(TINY, archs[i])
    sub = extract(params, net, x.shape)["params"]
    with P._precision((name,)):
        return float(P.PROXIES[name](net, sub, None, jnp.asarray(x), jnp.asarray(y), key))


def _super(name, setup, i):
    key, x, y, params, archs = setup
    with P._precision((name,)):
        return float(P.PROXIES[name](HybridUNet(TINY), params, jnp.asarray(archs[i]), jnp.asarray(x), jnp.asarray(y), key))


def test_naswot_pixel_map_equals_loop(setup):
    # the supernet-equals-stand-alone check of every proxy (naswot_pixel included) is slow, below
    # three candidates in chunks of two: one lax.map chunk, and a short last chunk scored one by one
    key, x, y, params, archs = setup
    got = {m: P.score(["naswot_pixel"], TINY, archs, {16: (x, y)}, key, mode=m, chunk=2, progress=False, params=params)
           for m in ("map", "loop")}
    np.testing.assert_allclose(got["map"], got["loop"], rtol=1e-6)
    assert np.ptp(got["map"]) > 0  # the candidates are told apart


@pytest.mark.slow
@pytest.mark.parametrize("name", ["naswot_pixel", "jacob_cov", "synflow", "dss"])
def test_supernet_score_equals_standalone(setup, name):
    for i in range(len(setup[4])):
        assert _super(name, setup, i) == pytest.approx(_alone(name, setup, i), rel=1e-4)


@pytest.mark.slow
def test_every_mode_scores_like_the_loop(setup):
    key, x, y, params, archs = setup
    got = {m: P.score(P.names(), TINY, archs, {16: (x, y)}, key, mode=m, chunk=2, progress=False, params=params)
           for m in P.MODES}
    for m in ("map", "vmap"):
        np.testing.assert_allclose(got[m], got["loop"], rtol=2e-3)
    assert np.all(np.isfinite(got["loop"]))


def test_bad_input_is_refused_before_tracing(setup):
    key, x, y, params, archs = setup
    with pytest.raises(ValueError, match="unknown dense proxy"):
        P.score(["naswot"], TINY, archs, {16: (x, y)}, key)
    with pytest.raises(ValueError, match="no image batch at resolution 32"):
        P.score(["naswot_pixel"], TINY, TINY.from_string("r32|conv:d1w4h1m1k1|conv:d1w8h1m1k1"), {16: (x, y)}, key)
    with pytest.raises(ValueError, match="unknown batching mode"):
        P.score(["naswot_pixel"], TINY, archs, {16: (x, y)}, key, mode="pmap")
