"""The elastic hybrid supernet against its stand-alone candidates, at tiny sizes: outputs equal
to 1e-5 after weight extraction, parameter counts equal to the closed form, FLOPs against
XLA's cost analysis, and clear errors for bad candidates."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.nets.hybrid import HybridUNet, cost, extract, standalone
from jnas.spaces.hybrid import BLOCKS, HybridSpace

TINY = HybridSpace(resolutions=(8, 16), stage_blocks=(("conv", "mbconv"), BLOCKS), widths=((4, 8), (8, 16)),
                   depths=(1, 2), heads=(1, 2, 4), mlp_ratios=(1, 2), kernels=(1, 3), stem_width=4)
# One candidate per block type at stage 1, each with a different depth, width, head count,
# ratio, kernel and resolution mix (so every elastic dimension is exercised).
ARCHS = ["r16|conv:d2w4h1m1k3|transformer:d2w16h4m2k3",
         "r8|mbconv:d1w8h2m2k3|mbconv:d2w8h1m1k1",
         "r8|mbconv:d2w4h4m1k1|conv:d1w16h2m2k3"]


@pytest.fixture(scope="module")
def supernet():
    net = HybridUNet(TINY)
    params = jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), jnp.zeros(TINY.arch_shape, jnp.int32))
    return net, params, jax.jit(net.apply)


@pytest.mark.parametrize("text", ARCHS)
def test_extracted_candidate_equals_the_supernet_and_counts_match_the_closed_form(supernet, text):
    net, params, apply = supernet
    arch = TINY.from_string(text)
    r = TINY.decode(arch).resolution
    x = jax.random.normal(jax.random.key(1), (2, r, r, 3))
    alone = standalone(TINY, arch)
    sub = extract(params["params"], alone, x.shape)
    compiled = jax.jit(alone.apply).lower(sub, x).compile()
    y_super, y_alone = apply(params, x, arch), compiled(sub, x)
    np.testing.assert_allclose(np.asarray(y_alone), np.asarray(y_super), atol=1e-5, rtol=1e-5)
    assert float(jnp.abs(y_alone).max()) > 1e-3  # not trivially zero
    c = cost(TINY, arch)
    assert sum(leaf.size for leaf in jax.tree.leaves(sub)) == c.params
    ca = compiled.cost_analysis()
    xla = (ca[0] if isinstance(ca, list) else ca)["flops"] / x.shape[0]
    # XLA counts 2 FLOPs per multiply-add of the kernel taps inside the image (the closed form
    # with padded=False) plus the elementwise ops (norms, activations, softmax, residual adds)
    inside = cost(TINY, arch, padded=False).flops
    assert inside <= c.flops and inside <= xla <= 1.15 * inside, (xla, inside, c.flops)


def test_one_trace_serves_every_candidate(supernet):
    net, params, _ = supernet
    traces = []
    f = jax.jit(lambda p, x, a: (traces.append(1), net.apply(p, x, a))[1])
    x = jnp.zeros((1, 8, 8, 3))
    for text in ARCHS:
        a = TINY.from_string(text)
        if TINY.decode(a).resolution == 8:
            f(params, x, a)
    assert len(traces) == 1


def test_bad_candidates_are_refused_by_field():
    with pytest.raises(ValueError, match=r"stage 1 heads 8 is not in the space; allowed values \[1, 2, 4\]"):
        TINY.from_string("r8|conv:d1w8h1m2k1|transformer:d1w8h8m1k1")
    with pytest.raises(ValueError, match=r"stage 0 width 6 is not in the space; allowed values \[4, 8\]"):
        TINY.from_string("r8|conv:d1w6h1m2k1|transformer:d1w8h2m1k1")
    with pytest.raises(ValueError, match=r"stage 0 block 'transformer' is not in the space"):
        TINY.from_string("r8|transformer:d1w8h1m2k1|transformer:d1w8h2m1k1")
    with pytest.raises(ValueError, match=r"value 5 at position \(8,\) is outside 0..1 \(gene 8: stage 1 depth, values \[1, 2\]\)"):
        a = TINY.from_string(ARCHS[1]).copy()
        a[8] = 5
        standalone(TINY, a)
    with pytest.raises(ValueError, match=r"stage 0 width 12 is not divisible by head count\(s\) \[8\]"):
        HybridSpace(resolutions=(8,), stage_blocks=(BLOCKS,), widths=((12, 16),), heads=(1, 8))
    with pytest.raises(ValueError, match=r"this candidate takes 8x8 images \(its resolution gene\), got 16x16"):
        standalone(TINY, TINY.from_string(ARCHS[1])).init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
    with pytest.raises(ValueError, match=r"arch must have shape \(13,\)"):
        HybridUNet(TINY).init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), jnp.zeros((5,), jnp.int32))


def test_canonical_forms_build_the_same_network(supernet):
    # Unused genes (heads outside Transformer stages, the ratio of conv stages) change
    # nothing: the supernet gives identical outputs for a genome and its canonical form.
    net, params, apply = supernet
    archs = np.asarray(TINY.sample(jax.random.key(3), 12))
    canon = TINY.canonical(archs)
    assert np.array_equal(TINY.canonical(canon), canon)  # idempotent
    assert not np.array_equal(canon, archs)  # some genes were unused in 12 samples
    for a, c in zip(archs, canon):
        r = TINY.decode(a).resolution
        x = jax.random.normal(jax.random.key(2), (1, r, r, 3))
        np.testing.assert_array_equal(apply(params, x, a), apply(params, x, c))
    one = TINY.from_string("r8|mbconv:d1w8h2m2k3|conv:d2w8h4m2k1")
    assert TINY.to_string(TINY.canonical(one)) == "r8|mbconv:d1w8h1m2k3|conv:d2w8h1m1k1"
