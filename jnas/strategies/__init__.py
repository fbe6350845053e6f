"""Black-box search strategies with one ask/tell API (see :mod:`jnas.strategies.base`)."""

from jnas.strategies import bayesopt, gnas, nsga2, objectives
from jnas.strategies.base import Strategy, Trace, best_so_far, search
from jnas.strategies.driver import run
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

def _gea(**kw) -> Strategy:
    """GEA guided by the zero-cost ``params`` proxy of the benchmark network (C=16, N=5),
    counted analytically so the search stays jittable; pass ``score=`` for another proxy
    (e.g. ``jacob_perclass`` through :func:`jnas.strategies.objectives.proxy`)."""
    if "score" not in kw:
        from jnas.nets import NB201Network, arch_cost, cost_tables

        t = cost_tables(NB201Network())
        kw["score"] = lambda a: arch_cost(t["params_fixed"], t["params_per_op"], a)
    return gea(**kw)


# Single-objective strategies: name -> factory taking keyword hyperparameters (NB201 defaults).
# NSGA-II (multi-objective, (B, M) fitness) lives in jnas.strategies.nsga2.
STRATEGIES = {
    "rs": random_search,
    "rea": regularized_evolution,
    "ls": local_search,
    "reinforce": reinforce,
    "mcts": mcts,
    "renas": renas,
    "bananas": bananas,
    "gea": _gea,  # proxy-screened children: params proxy by default (see _gea)
    # Genetic-CNN's GA on NB201 cells as categorical genomes (6 genes of 5 ops); r_C 4 and
    # r_M 2 as in the survey (docs/references.md) would swap/change most of a 6-gene genome, so NB201 uses 2 and 1.
    "bo": bayesopt.gp_bo,  # GP (path encoding) + expected improvement over every unevaluated cell
    "ga": lambda **kw: genetic_cnn(_nb201.NUM_EDGES, num_values=_nb201.NUM_OPS, **{"r_c": 2, "r_m": 1, **kw}),
}


def get(name: str, **kwargs) -> Strategy:
    """Build a strategy by name. Raises ValueError listing the valid names."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid strategies are {sorted(STRATEGIES)}")
    return STRATEGIES[name](**kwargs)


__all__ = ["STRATEGIES", "Strategy", "Trace", "bayesopt", "best_so_far", "genetic_cnn", "bananas", "gea", "get", "gnas", "local_search", "mcts", "renas", "nsga2", "objectives", "psocnn", "random_search",
           "regularized_evolution", "reinforce", "run", "search"]
