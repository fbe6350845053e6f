"""NSGA-II operators against their definitions and hand-made fronts."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.strategies import nsga2


def brute_rank(F):
    """O(n^2) per front, straight from the definition: front k = non-dominated among the rest."""
    n = len(F)
    dom = lambda i, j: np.all(F[i] >= F[j]) and np.any(F[i] > F[j])
    rank, left, k = np.full(n, -1), set(range(n)), 0
    while left:
        front = {i for i in left if not any(dom(j, i) for j in left)}
        for i in front:
            rank[i] = k
        left -= front
        k += 1
    return rank


@pytest.mark.parametrize("seed", range(5))
def test_nondominated_sort_matches_the_definition(seed):
    F = np.asarray(jax.random.randint(jax.random.key(seed), (40, 3), 0, 6)).astype(np.float32)  # many ties
    rank = brute_rank(F)
    np.testing.assert_array_equal(nsga2.nondominated_rank(jnp.asarray(F)), rank)
    np.testing.assert_array_equal(nsga2.pareto_front(F), rank == 0)


def test_crowding_distance_on_a_hand_made_front():
    # One front of 4 points on a line; ranges are 3 in both objectives.
    F = jnp.array([[0.0, 3.0], [1.0, 2.0], [2.0, 1.0], [3.0, 0.0]])
    d = nsga2.crowding_distance(F, jnp.zeros(4, jnp.int32))
    assert np.isinf(d[0]) and np.isinf(d[3])
    np.testing.assert_allclose(d[1:3], [2 / 3 + 2 / 3, 2 / 3 + 2 / 3])
    # Two fronts are handled separately: the second front's lone interior point.
    F2 = jnp.array([[0.0, 4.0], [2.0, 3.0], [4.0, 0.0], [0.0, 2.0], [1.0, 1.5], [2.0, 0.0]])
    r = nsga2.nondominated_rank(F2)
    np.testing.assert_array_equal(r, [0, 0, 0, 1, 1, 1])
    d2 = nsga2.crowding_distance(F2, r)
    np.testing.assert_allclose(d2[1], (4 - 0) / 4 + (4 - 0) / 4)
    np.testing.assert_allclose(d2[4], (2 - 0) / 2 + (2 - 0) / 2)


def test_hypervolume_of_hand_made_fronts():
    ref = np.zeros(2)
    assert nsga2.hypervolume(np.array([[1.0, 1.0]]), ref) == 1.0
    # Staircase (1,3), (2,2), (3,1): 3 + 2 + 1 = 6 unit squares.
    assert nsga2.hypervolume(np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]]), ref) == 6.0
    # A dominated point adds nothing; a point below the reference adds nothing.
    assert nsga2.hypervolume(np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [1.0, 1.0], [-1.0, 5.0]]), ref) == 6.0
    # 3-D: union of boxes [0,a]x[0,b]x[0,c] by inclusion-exclusion.
    P = np.array([[2.0, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 1.0, 2.0]])
    union = 0.0
    for k in range(1, 4):
        for S in itertools.combinations(range(3), k):
            union += (-1) ** (k + 1) * np.prod(P[list(S)].min(0))
    assert nsga2.hypervolume(P, np.zeros(3)) == pytest.approx(union)


def test_nsga2_front_improves_on_nb201(table):
    from jnas import strategies as S

    cols = S.objectives.columns(table, ["c10valid_val_acc_200ep", "params_M"], [1.0, -1.0])
    s = nsga2.nsga2(population=20)
    obj = lambda a: (cols(a), jnp.zeros(a.shape[0]))
    trace = S.search(s, None, obj, 15, jax.random.key(0))
    F = np.asarray(trace.fitness)  # (15, 20, 2)
    ref = np.array([0.0, -2.0])
    first = nsga2.hypervolume(F[0][nsga2.pareto_front(F[0])], ref)
    allF = F.reshape(-1, 2)
    last = nsga2.hypervolume(allF[nsga2.pareto_front(allF)], ref)
    assert last > first
    # The true front of the whole table bounds what any search finds.
    from jnas.spaces import nb201

    full = np.asarray(cols(nb201.enumerate_all()))
    full = full[np.isfinite(full).all(1)]
    assert last <= nsga2.hypervolume(full[nsga2.pareto_front(full)], ref) + 1e-9
