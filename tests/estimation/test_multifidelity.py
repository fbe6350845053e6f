"""Multi-fidelity schedules against the papers' brackets, promotion rules by brute force,
the TPE density, the tabular objective, and resume without repeated evaluations."""

import itertools

import jax
import numpy as np
import pytest

from jnas.estimation import multifidelity as mf

CARD = (3, 3, 3, 3)


def toy_objective(calls=None):
    """value = sum of the vector + budget / 1000 (larger budgets look slightly better); cost = budget."""
    def objective(arch, budget):
        if calls is not None:
            calls.append((tuple(arch), budget))
        return float(np.sum(arch) + budget / 1000), float(budget)
    return objective


def sampler(key, n):
    return np.array(jax.random.randint(key, (n, len(CARD)), 0, 3))


def test_hyperband_brackets_are_the_papers_table_1():
    # Li et al. 2018, Table 1: R = 81, eta = 3.
    expected = [
        [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        [(34, 3), (11, 9), (3, 27), (1, 81)],
        [(15, 9), (5, 27), (1, 81)],
        [(8, 27), (2, 81)],
        [(5, 81)],
    ]
    got = mf.hyperband_brackets(1, 81, 3)
    assert [[(n, round(r, 9)) for n, r in b] for b in got] == expected
    assert mf.sh_rungs(81, 1, 81, 3) == expected[0]
    # Scaled budgets (r_min = 2, r_max = 162) only rescale r.
    assert [[n for n, _ in b] for b in mf.hyperband_brackets(2, 162, 3)] == [[n for n, _ in b] for b in expected]
    with pytest.raises(ValueError, match="eta"):
        mf.hyperband_brackets(1, 81, 1)


def test_successive_halving_evaluates_the_schedule_and_keeps_the_best():
    ev = mf.Evaluator(toy_objective(), max_cost=81 * 5)  # exactly one SH round of n = 81 at r = 1..81
    mf.successive_halving(ev, sampler, jax.random.key(0), 81, 1, 81, 3)
    per_budget = [sum(1 for r in ev.history if r["budget"] == b) for b in (1, 3, 9, 27, 81)]
    assert per_budget == [81, 27, 9, 3, 1] and ev.cost == 81 * 5
    first = np.asarray([r["arch"] for r in ev.history[:81]])
    last = ev.history[-1]["arch"]
    assert np.sum(last) == first.sum(1).max()  # brute force: the best of the 81 survives
    # Each rung holds the top third of the rung below (by value, ties in sampling order).
    for lo, hi, k in [(1, 3, 27), (3, 9, 9), (9, 27, 3)]:
        lower = [r for r in ev.history if r["budget"] == lo]
        top = sorted(range(len(lower)), key=lambda i: -lower[i]["value"])[:k]
        assert [r["arch"] for r in ev.history if r["budget"] == hi] == [lower[i]["arch"] for i in top]


def test_asha_promotes_only_from_the_top_third():
    ev = mf.Evaluator(toy_objective(), max_cost=400)
    mf.asha(ev, sampler, jax.random.key(1), 1, 27, 3, workers=1)  # one worker: every result is in
    seen: dict[int, list] = {0: [], 1: [], 2: [], 3: []}
    promotions = 0
    for rec in ev.history:
        k = int(rec["tag"].split()[-1])
        if k > 0:
            below = sorted(seen[k - 1], key=lambda r: -r[0])[: len(seen[k - 1]) // 3]
            assert rec["arch"] in [a for _, a in below], f"promotion of {rec['arch']} to rung {k} not in the top 1/3"
            promotions += 1
        seen[k].append((rec["value"], rec["arch"]))
    assert promotions > 10 and seen[3]  # it does promote, all the way up


def test_evaluator_resumes_without_repeating(tmp_path):
    calls_full: list = []
    ev_full = mf.Evaluator(toy_objective(calls_full), 600)
    mf.hyperband(ev_full, sampler, jax.random.key(2), 1, 27, 3)

    calls: list = []

    def dies_after_40(arch, budget):
        if len(calls) == 40:
            raise KeyboardInterrupt
        return toy_objective(calls)(arch, budget)

    with pytest.raises(KeyboardInterrupt):
        mf.hyperband(mf.Evaluator(dies_after_40, 600, tmp_path / "evals.jsonl"), sampler, jax.random.key(2), 1, 27, 3)
    ev = mf.Evaluator(toy_objective(calls), 600, tmp_path / "evals.jsonl")
    mf.hyperband(ev, sampler, jax.random.key(2), 1, 27, 3)
    assert calls == calls_full  # every evaluation ran exactly once across the two processes
    assert [r["arch"] for r in ev.history] == [r["arch"] for r in ev_full.history]
    assert ev.cost == ev_full.cost >= 600
    with pytest.raises(ValueError, match="holds another run"):
        mf.hyperband(mf.Evaluator(toy_objective(), 600, tmp_path / "evals.jsonl"), sampler, jax.random.key(3), 1, 27, 3)


def test_tpe_density_is_a_pmf_and_bandwidth_follows_the_rule():
    tpe = mf.TPE(CARD)
    data = sampler(jax.random.key(4), 12)
    bw = tpe.bandwidth(data)
    ref = np.clip(1.06 * data.std(0) * 12 ** (-1 / 8), 1e-3, 2 / 3)
    np.testing.assert_allclose(bw, ref)
    grid = np.array(list(itertools.product(range(3), repeat=4)))
    dens = tpe.density(grid, data, bw)
    assert dens.sum() == pytest.approx(1.0, abs=1e-12)
    # Brute force for one point: mean over data of prod_j (1 - bw_j if equal else bw_j / 2).
    x = grid[17]
    by_hand = np.mean([np.prod([(1 - bw[j]) if x[j] == d[j] else bw[j] / 2 for j in range(4)]) for d in data])
    assert dens[17] == pytest.approx(by_hand)


def test_tpe_proposals_follow_the_good_density():
    tpe = mf.TPE(CARD)
    bad = sampler(jax.random.key(6), 40)
    star = np.array([2, 0, 1, 2])
    good = np.tile(star, (6, 1))  # sd 0: bandwidth min_bw, l(x) is a spike at star
    props = [tpe.propose(jax.random.key(i), good, bad) for i in range(50)]
    assert sum(np.array_equal(p, star) for p in props) >= 48
    # Good points agree only on dimension 0 (= 2): proposals favour it well above 1/3.
    good = sampler(jax.random.key(7), 12)
    good[:, 0] = 2
    props = np.array([tpe.propose(jax.random.key(100 + i), good, bad) for i in range(200)])
    assert np.mean(props[:, 0] == 2) > 0.8


def test_tabular_objective_reads_the_longest_training_within_budget():
    class Table:
        columns = {"acc_12ep": np.array([10.0, 20.0]), "acc_200ep": np.array([50.0, 60.0]), "params_M": np.zeros(2)}

    obj = mf.tabular_objective(Table, "acc", lambda a: int(a[0]))
    assert obj(np.array([1]), 22.2) == (20.0, 12.0)
    assert obj(np.array([0]), 200) == (50.0, 200.0)
    with pytest.raises(ValueError, match="below the smallest fidelity"):
        obj(np.array([0]), 5)
    with pytest.raises(ValueError, match=r"metrics with <name>_<E>ep columns: \['acc'\]"):
        mf.tabular_objective(Table, "loss", lambda a: 0)


def test_warm_start_keeps_the_best_by_score():
    warm = mf.warm_start(sampler, lambda c: c.sum(1), factor=4)
    got = warm(jax.random.key(5), 5)
    cand = sampler(jax.random.key(5), 20)
    assert sorted(got.sum(1).tolist()) == sorted(cand.sum(1).tolist())[-5:]
