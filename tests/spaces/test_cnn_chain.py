"""psoCNN chain space: codecs, the random initialisation's layer-type probabilities, the
pooling limit against repeated halving, and the realised network's parameter count."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jnas.nets.chain import ChainNetwork
from jnas.spaces import cnn_chain as cc

SPACE = cc.ChainSpace(max_layers=10, max_channels=32, max_units=64)


def test_codecs_round_trip():
    for i in range(60):
        chain = cc.sample(SPACE, jax.random.key(i))
        assert cc.from_string(cc.to_string(chain), SPACE) == chain
        assert cc.decode(cc.encode(chain, SPACE.width)) == chain


@pytest.mark.parametrize("text, match", [
    ("C8k3-X9", r"token 1 'X9'"),
    ("Pmax-C8k3", "starts with a conv"),
    ("C8k3-F10-C8k3", "layer 2: conv after a fully connected"),
    ("C8k3-Pmax-Pmax-Pmax-Pmax-Pmax", "5 pooling layers; an input of side 28 allows 4"),
    ("C8k9", "kernels 1..7"),
    ("C0k3", "sizes >= 1"),
])
def test_bad_strings(text, match):
    with pytest.raises(ValueError, match=match):
        cc.from_string(text, cc.ChainSpace())


def test_decode_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind code 7"):
        cc.decode(np.array([[1, 8, 3], [7, 0, 0]]))


@pytest.mark.parametrize("side", [1, 2, 3, 7, 28, 32, 33, 224])
def test_pool_limit_is_the_number_of_halvings(side):
    size, halvings = side, 0
    while size // 2 >= 1:  # brute force: 2x2/2 valid pooling floors the side
        size //= 2
        halvings += 1
    assert cc.ChainSpace(input_size=side).max_pools == halvings


def test_limit_pools_drops_from_the_end():
    chain = cc.from_string("C3k3-Pmax-C3k3-Pavg-Pmax-Pmax-Pavg-Pmax-F10")
    assert cc.to_string(cc.limit_pools(cc.ChainSpace(), chain)) == "C3k3-Pmax-C3k3-Pavg-Pmax-Pmax-F10"


def test_samples_are_valid_and_follow_the_layer_type_probabilities():
    space = cc.ChainSpace()
    n, kinds, depths = 300, [], []
    for i in range(n):
        chain = cc.check(cc.sample(space, jax.random.key(i)), space)  # raises if any rule is broken
        depths.append(len(chain) + 1)
        kinds.append("pool" if chain[1].kind in cc.POOLS else chain[1].kind)  # 2nd layer: no limit reached
    assert min(depths) >= space.min_layers and max(depths) <= space.max_layers
    counts = [kinds.count(k) for k in ("conv", "pool", "fc")]
    p = stats.chisquare(counts, np.array([space.p_conv, space.p_pool, space.p_fc]) * n).pvalue
    assert p > 1e-3, (counts, p)


def _param_count(chain, side, channels, classes):
    """Closed form: conv k*k*cin*cout (no bias) + BN 2*cout; fc in*out + out."""
    total, flat = 0, None
    for layer in chain:
        if layer.kind == "conv":
            total += layer.kernel**2 * channels * layer.size + 2 * layer.size
            channels = layer.size
        elif layer.kind in cc.POOLS:
            side //= 2
        else:
            flat = side * side * channels if flat is None else flat
            total += flat * layer.size + layer.size
            flat = layer.size
    flat = side * side * channels if flat is None else flat
    return total + flat * classes + classes


@pytest.mark.parametrize("text", ["C8k3-Pmax-C16k5-Pavg-F32", "C4k7", "C3k3-Pmax-Pmax-Pmax-Pmax-F5-F7"])
def test_network_parameter_count(text):
    chain = cc.from_string(text, cc.ChainSpace())
    net = ChainNetwork(num_classes=10)
    x = jnp.zeros((2, 28, 28, 1))
    v = net.init(jax.random.key(0), x, cc.encode(chain, 8), train=False)
    n = sum(a.size for a in jax.tree.leaves(v["params"]))
    assert n == _param_count(chain, 28, 1, 10)
    assert net.apply(v, x, cc.encode(chain, 8), train=False).shape == (2, 10)


def test_network_refuses_one_pool_too_many():
    chain = (cc.Layer("conv", 4, 3),) + (cc.Layer("maxpool"),) * 5  # 28 allows 4
    with pytest.raises(ValueError, match="layer 5 pools a 1x1 map"):
        ChainNetwork().init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), cc.encode(chain, 6), train=False)
