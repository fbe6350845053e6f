"""GNAS tree space: codecs over every tree, the space size by enumeration, attribute paths
against walking the parent pointers, and the one-parent constraint of the adjacency."""

import itertools

import jax
import numpy as np
import pytest

from jnas.spaces import tree

SPACE = tree.TreeSpace((1, 3, 2, 3))


def _all(space):
    return [np.array(a, np.int32) for a in itertools.product(
        *[range(space.blocks[l]) for l in range(space.layers - 1) for _ in range(space.blocks[l + 1])])]


def test_size_and_codec_over_every_tree():
    trees = _all(SPACE)
    assert len(trees) == SPACE.size() == 1**3 * 3**2 * 2**3
    codes = {tree.to_string(SPACE, a) for a in trees}
    assert len(codes) == len(trees)
    for a in trees:
        np.testing.assert_array_equal(tree.from_string(SPACE, tree.to_string(SPACE, a)), a)


def test_paths_and_adjacency():
    for a in _all(SPACE):
        path = tree.ancestors(SPACE, a)
        for n in range(SPACE.num_attributes):  # walk the parent pointers by hand
            block = n
            for l in range(SPACE.layers - 1, 0, -1):
                assert path[l, n] == block
                block = a[SPACE.offset(l - 1) + block]
            assert path[0, n] == block == 0
        for m in tree.adjacency(SPACE, a):
            np.testing.assert_array_equal(m.sum(0), 1)  # each block has exactly one parent


def test_sample_is_valid_and_covers_choices():
    seen = np.stack([tree.sample(SPACE, jax.random.key(i)) for i in range(200)])
    for a in seen:
        tree.check(SPACE, a)
    hi = np.concatenate([[SPACE.blocks[l]] * SPACE.blocks[l + 1] for l in range(SPACE.layers - 1)])
    np.testing.assert_array_equal(seen.max(0), hi - 1)


@pytest.mark.parametrize("text, match", [
    ("0-0-0_0-1_0-1", "lists 2 parents; it has 3 blocks"),
    ("0-0-0_0-3_0-1-1", "block 1 of layer 2 has parent 3; layer 1 has blocks 0..2"),
    ("0-0-0_0-x_0-1-1", "'x' is not a block index"),
    ("0-0-0_0-1", "has 2 layers of parents"),
])
def test_bad_strings(text, match):
    with pytest.raises(ValueError, match=match):
        tree.from_string(SPACE, text)


def test_bad_space():
    with pytest.raises(ValueError, match="start with 1"):
        tree.TreeSpace((2, 3))
