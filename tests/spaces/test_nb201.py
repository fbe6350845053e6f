import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jnas.nets import NB201Network
from jnas.spaces import nb201 as sp

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_string_roundtrip_all_cells():
    archs = np.asarray(sp.enumerate_all())
    for a in archs[::7]:  # every 7th cell keeps the test quick; index roundtrip covers all
        assert np.array_equal(np.asarray(sp.from_string(sp.to_string(a))), a)


def test_index_roundtrip_and_enumeration_unique():
    archs = sp.enumerate_all()
    idx = sp.to_index(archs)
    np.testing.assert_array_equal(np.asarray(idx), np.arange(15625))
    np.testing.assert_array_equal(np.asarray(sp.from_index(idx)), np.asarray(archs))
    assert len({tuple(a) for a in np.asarray(archs).tolist()}) == 15625


def test_from_string_matches_table_op_columns(table, data_dir):
    # The table's op_* columns were written independently of the string; they must agree.
    import csv, gzip

    rows = list(csv.DictReader(gzip.open(data_dir / "nb201" / "nb201_cifar10.csv.gz", "rt")))
    cols = ["op_e0_1", "op_e0_2", "op_e1_2", "op_e0_3", "op_e1_3", "op_e2_3"]
    for r in rows[::97]:
        assert np.asarray(sp.from_string(r["arch_str"])).tolist() == [int(r[c]) for c in cols]


def test_known_string():
    assert np.asarray(sp.from_string(BEST)).tolist() == [3, 3, 3, 1, 3, 2]
    assert sp.to_string(jnp.array([3, 3, 3, 1, 3, 2])) == BEST


@pytest.mark.parametrize(
    "bad, match",
    [
        ("|nor_conv_3x3~0|+|none~0|skip_connect~1|", "node groups"),
        ("|conv_5x5~0|+|none~0|skip_connect~1|+|none~0|none~1|none~2|", r"unknown op 'conv_5x5'.*position 1"),
        ("|nor_conv_3x3~0|+|none~0|skip_conect~1|+|none~0|none~1|none~2|", r"unknown op 'skip_conect'.*position 25"),
        ("|nor_conv_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|", r"must read 'nor_conv_3x3~0'"),
        ("|nor_conv_3x3~0|+|none~0|+|none~0|none~1|none~2|", "has 1 edges, expected 2"),
        ("nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "must start and end"),
    ],
)
def test_malformed_strings(bad, match):
    with pytest.raises(ValueError, match=match):
        sp.from_string(bad)


def test_bad_arrays():
    with pytest.raises(ValueError, match="shape"):
        sp.to_string(jnp.zeros(5, jnp.int32))
    with pytest.raises(ValueError, match="op index 7 at edge 2"):
        sp.check_batch(jnp.array([0, 1, 7, 0, 0, 0]))


def test_canonical_count_matches_paper():
    # NAS-Bench-201 paper: 6,466 unique topologies among 15,625 cells.
    table = np.asarray(sp.canonical_table("nb201"))
    assert len(np.unique(table)) == 6466
    # Representatives are fixed points and the smallest member of their class.
    assert np.all(table[table] == table)
    assert np.all(table <= np.arange(15625))
    functional = np.asarray(sp.canonical_table("functional"))
    assert len(np.unique(functional)) == 4930
    # The functional rule only merges nb201 classes, never splits them.
    for cls in np.unique(table)[:500]:
        assert len(np.unique(functional[table == cls])) == 1
    with pytest.raises(ValueError, match="unknown canonicalisation rule"):
        sp.canonical_table("nope")


def test_dead_edges_do_not_change_the_network(key):
    # Edge 1->0 is 'none', so node 1 is zero and edges 1->2, 1->3 are dead: changing them
    # must leave both the canonical form and the network output unchanged.
    table = sp.canonical_table("nb201")
    net = NB201Network(C=2, N=1, num_classes=3)
    x = jax.random.normal(key, (4, 8, 8, 3))
    base = jnp.array([0, 3, 2, 1, 4, 2])
    variables = jax.jit(net.init)(key, x, base)
    apply = jax.jit(lambda a: net.apply(variables, x, a, mutable=["batch_stats"])[0])
    out = apply(base)
    for op12 in range(5):
        for op13 in range(5):
            a = base.at[2].set(op12).at[4].set(op13)
            assert int(sp.to_index(sp.canonical(a, table))) == int(sp.to_index(sp.canonical(base, table)))
            np.testing.assert_allclose(apply(a), out, rtol=1e-6, atol=1e-6)


def test_disconnected_cells_are_at_chance(table):
    # Independent ground truth: the benchmark's trained accuracy of a cell with no
    # input->output path is chance level (10%), and every connected cell beats it.
    archs = np.asarray(sp.enumerate_all())
    connected = np.array([sp.is_connected(a) for a in archs])
    acc = np.asarray(table.column("c10_test_acc_200ep"))
    np.testing.assert_allclose(acc[~connected], 10.0, atol=1e-6)
    assert np.all(acc[connected] > 10.0)


def test_sample_and_mutate_under_jit_and_vmap(key):
    keys = jax.random.split(key, 4000)
    archs = jax.jit(jax.vmap(sp.sample))(keys)
    chex.assert_shape(archs, (4000, 6))
    parents = archs
    children = jax.jit(jax.vmap(sp.mutate))(jax.random.split(jax.random.key(1), 4000), parents)
    diff = np.asarray(children != parents)
    assert np.all(diff.sum(1) == 1)  # exactly one edge changes
    # The changed edge and the new op are uniform: chi-square tests with a fixed seed.
    edge_counts = np.bincount(diff.argmax(1), minlength=6)
    assert stats.chisquare(edge_counts).pvalue > 1e-3
    shift = (np.asarray(children) - np.asarray(parents))[diff] % 5
    assert stats.chisquare(np.bincount(shift, minlength=5)[1:]).pvalue > 1e-3
    # Each op appears uniformly in sampled architectures.
    assert stats.chisquare(np.bincount(np.asarray(archs).ravel(), minlength=5)).pvalue > 1e-3


def test_neighbours_are_all_one_edit_away():
    a = jnp.array([0, 1, 2, 3, 4, 0])
    nb = np.asarray(sp.neighbours(a))
    assert nb.shape == (24, 6)
    assert len({tuple(r) for r in nb.tolist()}) == 24
    assert np.all((nb != np.asarray(a)).sum(1) == 1)
