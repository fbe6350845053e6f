"""Flax networks that realise jnas architectures (architecture as an input array)."""

from jnas.nets.darts import DartsNetwork
from jnas.nets.hybrid import HybridUNet
from jnas.nets.nb201 import NB201Network, arch_cost, cost_tables

__all__ = ["DartsNetwork", "HybridUNet", "NB201Network", "arch_cost", "cost_tables"]
