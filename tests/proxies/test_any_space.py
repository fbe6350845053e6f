"""Proxy scoring over a space other than NAS-Bench-201: the Genetic-CNN space with its own
network, whose layers follow a concrete genome (``arch="static"``)."""

import jax
import numpy as np
import pytest

from jnas import proxies
from jnas.nets.genetic import GeneticNetwork
from jnas.proxies import scoring
from jnas.spaces import genetic

SPACE = genetic.GeneticSpace((3,))
NET = GeneticNetwork(stages=(3,), C=2, num_classes=3)


@pytest.fixture(scope="module")
def batch():
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    return x, np.array([0, 1, 2, 0])


def test_each_genome_is_scored_with_its_own_network_and_initialisation(batch):
    archs = np.asarray(SPACE.sample(jax.random.key(1), 2))
    key = jax.random.key(2)
    got = proxies.score("grad_norm", archs, batch, key, space=SPACE, net=NET, arch="static", init="per_arch",
                        progress=False)
    proxy = proxies.get("grad_norm")
    x, y = scoring.check_batch(*batch)
    for g, a in zip(got, archs):  # the reference: build, initialise and score this genome alone, eagerly
        v = NET.init(jax.random.fold_in(key, int(SPACE.to_index(a))), x, a)
        assert g == pytest.approx(float(proxy.fn(NET, v, a, x, y)), rel=1e-5)
    assert len(set(np.round(got, 6))) == 2  # two genomes, two networks


def test_scoring_another_space_needs_its_network_and_a_proxy_it_supports(batch):
    archs = np.asarray(SPACE.sample(jax.random.key(1), 2))
    with pytest.raises(ValueError, match="needs its network"):
        proxies.score("snip", archs, batch, jax.random.key(0), space=SPACE)
    with pytest.raises(ValueError, match="naswot.*GeneticNetwork"):
        proxies.score("naswot", archs, batch, jax.random.key(0), space=SPACE, net=NET, arch="static", progress=False)
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        proxies.score("snip", np.full((2, 3), 2), batch, jax.random.key(0), space=SPACE, net=NET, arch="static")
    with pytest.raises(ValueError, match="unknown scoring option.*'chunks'"):
        proxies.score("snip", archs, batch, jax.random.key(0), space=SPACE, net=NET, chunks=4)
    with pytest.raises(ValueError, match="arch='static'.*loop"):
        proxies.score("snip", archs, batch, jax.random.key(0), space=SPACE, net=NET, arch="static", mode="map")


def test_config_object_and_keywords_are_one_set_of_knobs():
    cfg = proxies.ScoringConfig(mode="loop", chunk=4)
    assert scoring.config_from(cfg, {"chunk": 8}) == proxies.ScoringConfig(mode="loop", chunk=8)
    assert scoring.config_from(None, {}) == proxies.ScoringConfig()
