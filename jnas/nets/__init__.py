"""Flax networks that realise jnas architectures (architecture as an input array)."""

from jnas.nets.nb201 import NB201Network, arch_cost, cost_tables

__all__ = ["NB201Network", "arch_cost", "cost_tables"]
