"""The batched entry point: every mode and edge selection gives the per-architecture
loop's numbers; bad input gets clear errors."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas import proxies
from jnas.nets import NB201Network
from jnas.spaces import nb201 as sp
from tests.small_net import SmallNet
from tests.conftest import REPO

COMBOS = [("map", "switch"), ("loop", "mask"), ("vmap", "mask"), ("map", "mask")]


@pytest.fixture(scope="module")
def small():
    x = jax.random.normal(jax.random.key(1), (8, 8, 8, 3))
    y = jnp.arange(8) % 3
    archs = sp.sample(jax.random.key(2), 5)
    return NB201Network(C=2, N=1, num_classes=3), archs, (x, y)


def _check_modes(name, small, combos, net=None):
    base, archs, batch = small
    net = base if net is None else net
    key = jax.random.key(0)
    reference = proxies.score(name, archs, batch, key, net=net, mode="loop", select="switch", progress=False)
    for mode, select in combos:
        got = proxies.score(name, archs, batch, key, net=net, mode=mode, select=select, chunk=2, progress=False)
        np.testing.assert_allclose(got, reference, rtol=2e-4, atol=1e-5, err_msg=f"{name} {mode}/{select}")
    for library in ("ynnpack", "eigen"):  # the CPU convolution library changes float rounding only
        got = proxies.score(name, archs, batch, key, net=net, mode="map", select="switch", conv_library=library, chunk=2, progress=False)
        np.testing.assert_allclose(got, reference, rtol=2e-4, atol=1e-5, err_msg=f"{name} map/switch {library}")
    if proxies.get(name).reverse_only:  # JAX's own conv gradients, against the written-out ones
        for mode in ("loop", "map"):
            got = proxies.score(name, archs, batch, key, net=net, mode=mode, select="switch", conv_grads="xla", chunk=2, progress=False)
            np.testing.assert_allclose(got, reference, rtol=2e-4, atol=1e-5, err_msg=f"{name} {mode}/switch/xla")
    # A score depends on the architecture only, not on its chunk-mates: score one alone
    # (chunk 2 pads it with itself, and reuses the map/switch compilation above).
    alone = proxies.score(name, archs[3:4], batch, key, net=net, chunk=2, progress=False)
    np.testing.assert_allclose(alone, reference[3:4], rtol=2e-4, atol=1e-5)
    return reference


@pytest.mark.parametrize("name,combos,small_net", [
    ("jacob_cov", COMBOS[:3], True),  # the fast case: every batching mode, on SmallNet
    pytest.param("naswot", [COMBOS[0], COMBOS[2]], False, marks=pytest.mark.slow),
    pytest.param("naswot", COMBOS[:3], False, marks=pytest.mark.slow),
    pytest.param("fisher", COMBOS[:3], False, marks=pytest.mark.slow),
])
def test_modes_agree(name, combos, small_net, small):
    # The NB201 network's edge selection (switch against mask) is checked at the network
    # level in tests/nets/test_nb201.py and, through a proxy, by the reverse-mode twin below.
    scores = _check_modes(name, small, combos, SmallNet() if small_net else None)
    assert np.all(np.isfinite(scores)) and len(np.unique(scores)) > 1


def test_reverse_mode_proxy_agrees_with_the_loop_under_both_conv_gradients(small):
    # The small twin of the fisher case above: lax.map with JAX's own convolution gradients
    # gives the scores of the per-architecture loop with the written-out ones (two
    # independent batching modes and two independent gradients in one comparison).
    net, archs, batch = small
    key = jax.random.key(0)
    kw = dict(net=net, select="switch", chunk=2, progress=False)
    reference = proxies.score("fisher", archs, batch, key, mode="loop", conv_grads="explicit", **kw)
    assert np.all(np.isfinite(reference)) and len(np.unique(reference)) > 1
    got = proxies.score("fisher", archs, batch, key, mode="map", conv_grads="xla", **kw)
    np.testing.assert_allclose(got, reference, rtol=2e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["grad_norm", "jacob_cov", "jacob_perclass", "synflow", "snip", "grasp", "params", "flops"])
def test_modes_agree_all_proxies(name, small):
    _check_modes(name, small, COMBOS)


@pytest.mark.parametrize("name,small_net", [("snip", True), pytest.param("naswot", False, marks=pytest.mark.slow),
                                            pytest.param("fisher", False, marks=pytest.mark.slow)])
def test_per_arch_init_is_a_fresh_init_per_cell(name, small_net, small):
    """init="per_arch" scores each cell as if scored alone with key fold_in(key, index).
    The fast case scores NB201 cells with SmallNet (the plumbing is the network's business
    only through init); the NB201 network's cases are slow."""
    net, archs, batch = small
    net = SmallNet() if small_net else net
    key = jax.random.key(0)
    ref = np.array([proxies.score(name, a[None], batch, jax.random.fold_in(key, sp.to_index(a)), net=net,
                                  progress=False)[0] for a in archs])
    for mode in ("map", "loop"):
        got = proxies.score(name, archs, batch, key, net=net, mode=mode, init="per_arch", chunk=2, progress=False)
        np.testing.assert_allclose(got, ref, rtol=2e-4, atol=1e-6, err_msg=mode)
    shared = proxies.score(name, archs, batch, key, net=net, progress=False)
    assert not np.allclose(shared, ref)  # the weights really differ


def test_default_mode_per_backend():
    assert proxies.default_mode(proxies.get("naswot"), "cpu") == ("map", "switch")
    assert proxies.default_mode(proxies.get("snip"), "cpu") == ("loop", "switch")
    assert proxies.default_mode(proxies.get("grasp"), "cpu") == ("loop", "mask")
    assert proxies.default_mode(proxies.get("naswot"), "gpu") == ("vmap", "mask")
    assert proxies.default_conv_grads(proxies.get("jacob_cov"), "cpu") == "explicit"
    assert proxies.default_conv_grads(proxies.get("jacob_cov"), "gpu") == "xla"
    for name in ("synflow", "grasp", "naswot"):
        assert proxies.default_conv_grads(proxies.get(name), "cpu") == "xla"
    assert proxies.default_conv_library(proxies.get("naswot"), "cpu") == "eigen"
    assert proxies.default_conv_library(proxies.get("naswot"), "gpu") == "ynnpack"
    assert proxies.default_conv_library(proxies.get("synflow"), "cpu") == "ynnpack"


def test_bad_input_errors(small):
    net, archs, (x, y) = small
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"unknown proxy 'nasbot'; valid proxies are \['fisher'"):
        proxies.score("nasbot", archs, (x, y), key)
    with pytest.raises(ValueError, match="unknown batching mode 'pmap'"):
        proxies.score("naswot", archs, (x, y), key, net=net, mode="pmap")
    with pytest.raises(ValueError, match="unknown edge selection"):
        proxies.score("naswot", archs, (x, y), key, net=net, select="gather")
    with pytest.raises(ValueError, match=r"shape \(b, h, w, c\)"):
        proxies.score("naswot", archs, (x[0], y), key, net=net)
    with pytest.raises(ValueError, match=r"labels must have shape \(8,\)"):
        proxies.score("naswot", archs, (x, y[:3]), key, net=net)
    with pytest.raises(ValueError, match=r"labels must lie in 0..2"):
        proxies.score("naswot", archs, (x, y + 5), key, net=net)
    with pytest.raises(ValueError, match="op index 9 at edge 0"):
        proxies.score("naswot", jnp.array([[9, 0, 0, 0, 0, 0]]), (x, y), key, net=net)
    with pytest.raises(ValueError, match=r"unknown init 'random'; valid choices are \['shared', 'per_arch'\]"):
        proxies.score("naswot", archs, (x, y), key, net=net, init="random")
    with pytest.raises(ValueError, match="unknown conv_grads 'fast'"):
        proxies.score("fisher", archs, (x, y), key, net=net, conv_grads="fast")
    with pytest.raises(ValueError, match=r"unknown conv_library 'mkl'; valid choices are \['ynnpack', 'eigen'\]"):
        proxies.score("naswot", archs, (x, y), key, net=net, conv_library="mkl")
    with pytest.raises(ValueError, match="'synflow' uses forward-mode"):
        proxies.score("synflow", archs, (x, y), key, net=net, conv_grads="explicit")
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        proxies.score("naswot", archs, (x, y), key, net=net, chunk=0)
    with pytest.raises(ValueError, match=r"devices must be an int in 1\.\.1 \(the local cpu devices\), got 2"):
        proxies.score("naswot", archs, (x, y), key, net=net, devices=2)
    assert proxies.parse_names("naswot, synflow") == ["naswot", "synflow"]
    assert proxies.parse_names("all") == proxies.names()
    with pytest.raises(ValueError, match="unknown proxy 'foo'"):
        proxies.parse_names("naswot,foo")


_SPLIT = """
import json, sys, jax, numpy as np
from experiments.common import use_cpu_cores
from jnas import proxies
from jnas.nets import NB201Network
from jnas.spaces import nb201 as sp
n = use_cpu_cores()
x = jax.random.normal(jax.random.key(1), (8, 8, 8, 3)); y = np.arange(8) % 3
archs = sp.sample(jax.random.key(2), 5)
if sys.argv[3] == "small":
    from tests.small_net import SmallNet
    net = SmallNet()
else:
    net = NB201Network(C=2, N=1, num_classes=3)
out = {"set": n, "local": jax.local_device_count()}
kw = dict(net=net, chunk=2, progress=False)
name, modes = sys.argv[1], sys.argv[2].split(",")
for mode in modes:
    out[mode] = [proxies.score(name, archs, (x, y), jax.random.key(0), mode=mode, devices=d, **kw).tolist() for d in (1, 3)]
print(json.dumps(out))
"""


@pytest.mark.parametrize("name,modes,net", [
    ("snip", "map,vmap", "small"),  # the fast case: the splitting plumbing, on SmallNet
    pytest.param("naswot", "map", "nb201", marks=pytest.mark.slow),
    pytest.param("jacob_cov", "map,vmap", "nb201", marks=pytest.mark.slow),
])
def test_chunks_split_over_devices_give_the_same_scores(name, modes, net):
    # A fresh process with three CPU devices (experiments.common.use_cpu_cores, from
    # JNAS_CPU_DEVICES): each chunk of 2 is rounded up to 3, one architecture per device,
    # and the five scores (the last chunk padded) must equal the single-device ones.
    # snip on SmallNet is the fast case; the NB201 network's naswot (forward only) and
    # jacob_cov (a backward pass, and vmap) are slow.
    env = {**os.environ, "JNAS_CPU_DEVICES": "3", "XLA_FLAGS": ""}
    run = subprocess.run([sys.executable, "-c", _SPLIT, name, modes, net], capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["set"] == 3 and out["local"] == 3
    for mode in modes.split(","):
        one, split = out[mode]
        assert len(split) == 5
        np.testing.assert_allclose(split, one, rtol=1e-6, err_msg=f"{name} {mode}")


def test_cpu_devices_setting_is_checked(monkeypatch):
    from experiments.common import use_cpu_cores

    monkeypatch.setenv("JNAS_CPU_DEVICES", "two")
    with pytest.raises(ValueError, match="JNAS_CPU_DEVICES must be a positive integer, got 'two'"):
        use_cpu_cores()
    monkeypatch.setenv("JNAS_CPU_DEVICES", "2")
    jnp.zeros(1)  # JAX has started: the device count can no longer change, and is left alone
    assert use_cpu_cores() is None and jax.local_device_count() == 1
