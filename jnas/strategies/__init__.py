"""Black-box search strategies with one ask/tell API (see :mod:`jnas.strategies.base`)."""

from jnas.strategies import bayesopt, nsga2, objectives
from jnas.strategies.base import Strategy, Trace, best_so_far, search
from jnas.strategies.driver import run
from jnas.spaces import nb201 as _nb201
from jnas.strategies.genetic_cnn import genetic_cnn
from jnas.strategies.local_search import local_search
from jnas.strategies.bananas import bananas
from jnas.strategies.mcts import mcts
from jnas.strategies.renas import renas
from jnas.strategies.random_search import random_search
from jnas.strategies.regularized_evolution import regularized_evolution
from jnas.strategies.reinforce import reinforce

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
    # Genetic-CNN's GA on NB201 cells as categorical genomes (6 genes of 5 ops); r_C 4 and
    # r_M 2 as in the survey would swap/change most of a 6-gene genome, so NB201 uses 2 and 1.
    "bo": bayesopt.gp_bo,  # GP (path encoding) + expected improvement over every unevaluated cell
    "ga": lambda **kw: genetic_cnn(_nb201.NUM_EDGES, num_values=_nb201.NUM_OPS, **{"r_c": 2, "r_m": 1, **kw}),
}


def get(name: str, **kwargs) -> Strategy:
    """Build a strategy by name. Raises ValueError listing the valid names."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid strategies are {sorted(STRATEGIES)}")
    return STRATEGIES[name](**kwargs)


__all__ = ["STRATEGIES", "Strategy", "Trace", "bayesopt", "best_so_far", "genetic_cnn", "bananas", "get", "local_search", "mcts", "renas", "nsga2", "objectives", "random_search",
           "regularized_evolution", "reinforce", "run", "search"]
