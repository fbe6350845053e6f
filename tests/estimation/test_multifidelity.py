"""Multi-fidelity schedules on the ask/tell API against the papers' brackets, promotion rules
by brute force, DEHB's evolution, the TPE density, the tabular objective, and resume through
the driver without repeated evaluations."""

import dataclasses
import itertools
import json

import jax
import numpy as np
import pytest

from jnas import strategies as S
from jnas.estimation import multifidelity as mf
from jnas.spaces import darts
from jnas.spaces.base import Categorical

CARD = (3, 3, 3, 3)


@dataclasses.dataclass(frozen=True)
class Cat4(Categorical):
    """Four genes of three values: a space small enough to reason about by hand."""

    name = "cat4"
    choices = CARD
    arch_shape = (4,)

    def check(self, archs):
        return self.check_genes(archs)

    def to_string(self, arch):
        return "".join(str(int(v)) for v in np.asarray(arch))

    def from_string(self, text):
        return np.array([int(c) for c in text], np.int32)


SPACE = Cat4()


def toy_objective(calls=None):
    """value = sum of the vector + budget / 1000 (larger budgets look slightly better); cost = budget."""
    def objective(arch, budget):
        if calls is not None:
            calls.append((tuple(int(a) for a in arch), budget))
        return float(np.sum(arch) + budget / 1000), float(budget)
    return objective


def sampler(key, n):
    return np.array(jax.random.randint(key, (n, len(CARD)), 0, 3))


def evaluations(strategy, max_cost, key=0, calls=None, log=None):
    """Run ``strategy`` through the driver on the toy objective; its evaluation records."""
    trace = S.run(strategy, None, mf.batched(toy_objective(calls)), None, jax.random.key(key), log=log,
                  progress=False, max_cost=max_cost)
    return mf.history(trace)


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
    hist = evaluations(mf.successive_halving(SPACE, 81, 1, 81, 3), max_cost=81 * 5)  # one SH round: n = 81 at r = 1..81
    per_budget = [sum(1 for r in hist if r["budget"] == b) for b in (1, 3, 9, 27, 81)]
    assert per_budget == [81, 27, 9, 3, 1] and hist[-1]["total_cost"] == 81 * 5
    first = np.asarray([r["arch"] for r in hist[:81]])
    last = hist[-1]["arch"]
    assert np.sum(last) == first.sum(1).max()  # brute force: the best of the 81 survives
    # Each rung holds the top third of the rung below (by value, ties in sampling order).
    for lo, hi, k in [(1, 3, 27), (3, 9, 9), (9, 27, 3)]:
        lower = [r for r in hist if r["budget"] == lo]
        top = sorted(range(len(lower)), key=lambda i: -lower[i]["value"])[:k]
        assert [r["arch"] for r in hist if r["budget"] == hi] == [lower[i]["arch"] for i in top]


def test_asha_promotes_only_from_the_top_third():
    hist = evaluations(mf.asha(SPACE, 1, 27, 3, workers=1), max_cost=400, key=1)  # one worker: every result is in
    seen: dict[int, list] = {0: [], 1: [], 2: [], 3: []}
    promotions = 0
    for rec in hist:
        k = int(round(np.log(rec["budget"]) / np.log(3)))
        if k > 0:
            below = sorted(seen[k - 1], key=lambda r: -r[0])[: len(seen[k - 1]) // 3]
            assert rec["arch"] in [a for _, a in below], f"promotion of {rec['arch']} to rung {k} not in the top 1/3"
            promotions += 1
        seen[k].append((rec["value"], rec["arch"]))
    assert promotions > 10 and seen[3]  # it does promote, all the way up


def test_dehb_first_round_is_hyperband_and_evolution_improves_on_it():
    hb = evaluations(mf.hyperband(SPACE, 1, 27, 3), max_cost=200, key=4)
    de = evaluations(mf.dehb(SPACE, 1, 27, 3), max_cost=200, key=4)
    n_first = sum(n for rungs in mf.hyperband_brackets(1, 27, 3) for n, _ in rungs)
    assert [r["budget"] for r in de[:n_first]] == [r["budget"] for r in hb[:n_first]]
    for r in de:
        SPACE.check(np.asarray(r["arch"]))
    # Later rounds evolve each budget's subpopulation: on sum-of-genes (values 0..8), the
    # configurations DEHB tries at the smallest budget late in the run beat its first, random
    # ones by far more than Hyperband's (fresh random draws) do (5 seeds each).
    def gain(method, seed):
        hist = evaluations(method(SPACE, 1, 27, 3), max_cost=1500, key=seed)
        first = [r["value"] for r in hist[:n_first] if r["budget"] == 1]
        late = [r["value"] for r in hist[-60:] if r["budget"] == 1]
        return np.mean(late) - np.mean(first)

    de_gain = np.mean([gain(mf.dehb, s) for s in range(5)])
    hb_gain = np.mean([gain(mf.hyperband, s) for s in range(5)])
    assert de_gain > hb_gain + 0.5 and de_gain > 0.5, (de_gain, hb_gain)
    with pytest.raises(ValueError, match="DEHB needs a space with \\['choices'\\]"):
        mf.dehb(darts.SPACE, 1, 27)


def test_driver_resumes_a_multi_fidelity_run_without_repeating(tmp_path):
    calls_full: list = []
    full = evaluations(mf.hyperband(SPACE, 1, 27, 3), 600, key=2, calls=calls_full)
    calls: list = []

    class Died(Exception):
        pass

    def dies_after_40(archs, budgets):
        if len(calls) == 40:
            raise Died
        return mf.batched(toy_objective(calls))(archs, budgets)

    with pytest.raises(Died):
        S.run(mf.hyperband(SPACE, 1, 27, 3), None, dies_after_40, None, jax.random.key(2), log=tmp_path / "evals.jsonl",
              progress=False, max_cost=600)
    resumed = evaluations(mf.hyperband(SPACE, 1, 27, 3), 600, key=2, calls=calls, log=tmp_path / "evals.jsonl")
    assert calls == calls_full  # every evaluation ran exactly once across the two runs
    assert [r["arch"] for r in resumed] == [r["arch"] for r in full]
    assert resumed[-1]["total_cost"] == full[-1]["total_cost"] >= 600
    with pytest.raises(ValueError, match="holds another search"):
        evaluations(mf.hyperband(SPACE, 1, 27, 3), 600, key=3, log=tmp_path / "evals.jsonl")


@pytest.mark.parametrize("method", ["sh", "hb", "bohb"])
def test_whole_rungs_ask_each_rung_at_once_and_give_the_same_evaluations(tmp_path, method):
    make = {"sh": lambda **k: mf.successive_halving(SPACE, 27, 1, 27, 3, **k),
            "hb": lambda **k: mf.hyperband(SPACE, 1, 27, 3, **k), "bohb": lambda **k: mf.bohb(SPACE, 1, 27, 3, **k)}[method]
    one = evaluations(make(), 700, key=5)
    whole = evaluations(make(whole_rungs=True), 700, key=5, log=tmp_path / "evals.jsonl")
    n = min(len(one), len(whole))
    assert n >= len(one) - 27  # a cost stop lands at the end of a rung, not of one evaluation
    assert [(r["arch"], r["budget"], r["value"]) for r in whole[:n]] == [(r["arch"], r["budget"], r["value"]) for r in one[:n]]
    # Every ask is one whole rung: the rung sizes of the schedule, in order.
    rungs = ([(n_i, r) for n_i, r in mf.sh_rungs(27, 1, 27, 3)] if method == "sh"
             else [(n_i, r) for b in mf.hyperband_brackets(1, 27, 3) for n_i, r in b])
    asks = [(len(rec["archs"]), rec["budgets"][0]) for rec in map(json.loads, (tmp_path / "evals.jsonl").read_text().splitlines())]
    assert asks == (rungs * len(asks))[: len(asks)] and len(asks) > len(rungs)
    # An evaluation budget counts evaluations, not asks.
    trace = S.run(make(whole_rungs=True), None, mf.batched(toy_objective()), 30, jax.random.key(5), progress=False)
    assert 30 <= trace.archs.shape[0] < 30 + 27 and trace.archs.shape[1] == 1


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
