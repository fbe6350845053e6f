"""Black-box search strategies with one ask/tell API (see :mod:`jnas.strategies.base`)."""

from jnas.strategies import bayesopt, gnas, nsga2, objectives
from jnas.strategies.base import Query, Strategy, Trace, best_so_far, check_finite, search
from jnas.strategies.driver import run
from jnas.strategies.seeds import run_seeds
from jnas.spaces import nb201 as _nb201
from jnas.strategies.gea import gea
from jnas.strategies.genetic_cnn import genetic_cnn
from jnas.strategies.local_search import local_search
from jnas.strategies.bananas import bananas
from jnas.strategies.mcts import mcts
from jnas.strategies.psocnn import psocnn
from jnas.strategies.renas import renas
from jnas.strategies.random_search import random_search
from jnas.strategies.regularized_evolution import regularized_evolution
from jnas.strategies.reinforce import reinforce

def _gea(space=_nb201.SPACE, **kw) -> Strategy:
    """GEA guided by the zero-cost ``params`` proxy of the benchmark network (C=16, N=5),
    counted analytically so the search stays jittable; pass ``score=`` for another proxy
    (e.g. ``jacob_perclass`` through :func:`jnas.strategies.objectives.proxy`), as any space
    other than NB201 must."""
    if "score" not in kw:
        if space != _nb201.SPACE:
            raise ValueError(f"GEA has a default proxy on nb201 only; pass score= for the {space.name} space")
        from jnas.nets import NB201Network, arch_cost, cost_tables

        t = cost_tables(NB201Network())
        kw["score"] = lambda a: arch_cost(t["params_fixed"], t["params_per_op"], a)
    return gea(space=space, **kw)


def _path_on_nb201(factory):
    """``factory`` with NB201's path encoding as its default ``encode`` (White et al. 2021)."""
    def build(space=_nb201.SPACE, **kw):
        if space == _nb201.SPACE:
            kw.setdefault("encode", _nb201.path_encoding)
        return factory(space, **kw)
    return build


def _ga(space=_nb201.SPACE, **kw) -> Strategy:
    # Genetic-CNN's GA; r_C 4 and r_M 2 as in the survey (docs/references.md) would swap/change
    # most of a 6-gene NB201 genome, so NB201 uses 2 and 1.
    if space == _nb201.SPACE:
        kw = {"r_c": 2, "r_m": 1, **kw}
    return genetic_cnn(space, **kw)


# Single-objective strategies: name -> factory(space=NB201, **hyperparameters).
# NSGA-II (multi-objective, (B, M) fitness) lives in jnas.strategies.nsga2; psoCNN (chain
# space) and GNAS (tree space) are defined on their own spaces only.
STRATEGIES = {
    "rs": random_search,
    "rea": regularized_evolution,
    "ls": local_search,
    "reinforce": reinforce,
    "mcts": mcts,
    "renas": renas,
    "bananas": _path_on_nb201(bananas),
    "gea": _gea,  # proxy-screened children: params proxy by default on NB201 (see _gea)
    "bo": _path_on_nb201(bayesopt.gp_bo),  # GP + expected improvement over every unevaluated architecture
    "ga": _ga,
}


def get(name: str, space=None, **kwargs) -> Strategy:
    """Build a strategy by name over ``space`` (default NB201). Raises ValueError listing the
    valid names, or naming what the space lacks."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid strategies are {sorted(STRATEGIES)}")
    return STRATEGIES[name](_nb201.SPACE if space is None else space, **kwargs)


__all__ = ["STRATEGIES", "Query", "Strategy", "Trace", "bayesopt", "best_so_far", "check_finite", "genetic_cnn", "bananas", "gea", "get", "gnas", "local_search", "mcts", "renas", "nsga2", "objectives", "psocnn", "random_search",
           "regularized_evolution", "reinforce", "run", "run_seeds", "search"]
