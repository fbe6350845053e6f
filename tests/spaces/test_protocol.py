"""The Space protocol, checked on every registered space: a space added to
``jnas.spaces.SPACES`` is tested here without new test code."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas import spaces, train

NAMES = sorted(spaces.SPACES)


@pytest.fixture(params=NAMES)
def space(request):
    return spaces.SPACES[request.param]


def _draw(space, n=12, seed=0):
    return np.asarray(space.sample(jax.random.key(seed), n))


def test_registry_and_protocol(space):
    assert isinstance(space, spaces.Space)
    assert spaces.get(space.name) is space
    hash(space)  # static jit argument
    with pytest.raises(ValueError, match="unknown space 'nope'.*nb201"):
        spaces.get("nope")


def test_samples_are_valid_and_round_trip_through_strings(space):
    archs = _draw(space)
    assert archs.shape == (12, *space.arch_shape) and archs.dtype == np.int32
    np.testing.assert_array_equal(space.check(archs), archs)
    for a in archs:
        np.testing.assert_array_equal(space.from_string(space.to_string(a)), a)
    assert len({space.to_string(a) for a in archs}) > 1  # sampling is not constant


def test_mutants_and_children_are_valid_and_come_from_their_parents(space):
    archs = _draw(space)
    keys = jax.random.split(jax.random.key(1), len(archs))
    for k, a, b in zip(keys, archs, archs[::-1]):
        m = np.asarray(space.mutate(k, a))
        space.check(m)
        assert not np.array_equal(m, a)  # a mutation changes the architecture
        c = np.asarray(space.crossover(k, a, b))
        space.check(c)
        if space.jittable:  # array spaces: every position of the child is its parent's
            assert np.all((c == a) | (c == b))


def test_check_refuses_bad_architectures_by_name(space):
    with pytest.raises(ValueError, match="shape"):
        space.check(np.zeros((3, 2, 1), np.int32))
    bad = _draw(space, 1)[0].copy()
    bad.reshape(-1)[0] = 99  # a value no position of any registered space allows
    with pytest.raises(ValueError):
        space.check(bad)


def test_encoding_is_a_function_of_the_architecture(space):
    archs = _draw(space)
    e = np.asarray(space.encode(archs))
    assert e.ndim == 2 and e.shape[0] == len(archs) and np.isfinite(e).all()
    same = [[np.array_equal(archs[i], archs[j]) for j in range(len(archs))] for i in range(len(archs))]
    feat = [[np.array_equal(e[i], e[j]) for j in range(len(archs))] for i in range(len(archs))]
    assert same == feat  # distinct architectures get distinct features, equal ones equal


def test_jittable_spaces_trace_under_jit_and_vmap(space):
    if not space.jittable:
        pytest.skip(f"{space.name} is host-side (jittable=False)")
    key = jax.random.key(3)
    np.testing.assert_array_equal(jax.jit(space.sample, static_argnums=1)(key, 5), space.sample(key, 5))
    archs = space.sample(key, 5)
    keys = jax.random.split(key, 5)
    np.testing.assert_array_equal(jax.jit(jax.vmap(space.mutate))(keys, archs),
                                  np.stack([space.mutate(k, a) for k, a in zip(keys, archs)]))
    np.testing.assert_array_equal(jax.jit(jax.vmap(space.crossover))(keys, archs, archs[::-1]),
                                  np.stack([space.crossover(k, a, b) for k, a, b in zip(keys, archs, archs[::-1])]))


def test_categorical_index_and_neighbours_by_brute_force(space):
    if getattr(space, "choices", None) is None:
        pytest.skip(f"{space.name} is not a product of categorical genes")
    assert space.arch_shape == (len(space.choices),)
    assert space.num_archs == int(np.prod(space.choices))
    if space.to_index is None:  # too large for a dense int32 index (the capability is optional)
        assert space.from_index is None and space.num_archs > np.iinfo(np.int32).max
        a = np.asarray(space.sample(jax.random.key(0)))
    else:
        n = min(space.num_archs, 20_000)
        idx = np.linspace(0, space.num_archs - 1, n).astype(np.int64)
        archs = np.asarray(space.from_index(jnp.asarray(idx)))
        space.check(archs)
        np.testing.assert_array_equal(np.asarray(space.to_index(archs)), idx)
        a = archs[len(archs) // 2]
    nb = np.asarray(space.neighbours(a))
    assert len(nb) == sum(c - 1 for c in space.choices)
    assert np.all((nb != a).sum(1) == 1) and len({x.tobytes() for x in nb}) == len(nb)


def test_small_spaces_sample_uniformly(space):
    # Over a small categorical space, sampled index frequencies match the uniform law (chi^2).
    if getattr(space, "choices", None) is None or space.num_archs > 1000:
        pytest.skip("needs a categorical space of at most 1,000 architectures")
    from scipy.stats import chisquare

    counts = np.bincount(np.asarray(space.to_index(space.sample(jax.random.key(5), 50 * space.num_archs))),
                         minlength=space.num_archs)
    assert chisquare(counts).pvalue > 1e-4


def test_trainable_spaces_realise_their_architectures(space):
    # The network factory: every space jnas can train builds a network from an architecture's string.
    if space.name not in train.SPACES:
        pytest.skip(f"{space.name} has no trainable network factory (jnas.train.SPACES)")
    a = _draw(space, 1)[0]
    net, arch = train.realise(space.name, space.to_string(a), num_classes=10)
    assert hasattr(net, "apply")
    if space.name != "chain":  # the chain factory trims padding rows
        np.testing.assert_array_equal(np.asarray(arch), a)
    else:
        assert space.to_string(np.pad(np.asarray(arch), ((0, space.width - len(arch)), (0, 0)))) == space.to_string(a)
