"""Model-size proxies: parameter count and FLOPs (multiply-accumulates of conv and dense
layers at batch 1, the NAS-Bench-201 convention), in millions. Data-free and exact."""

from __future__ import annotations


from jnas.nets.nb201 import arch_cost, cost_tables
from jnas.proxies.base import Proxy


def params(net, variables, arch, x, y):
    t = cost_tables(net, resolution=x.shape[1], in_channels=x.shape[-1])
    return arch_cost(t["params_fixed"], t["params_per_op"], arch) / 1e6


def flops(net, variables, arch, x, y):
    t = cost_tables(net, resolution=x.shape[1], in_channels=x.shape[-1])
    return arch_cost(t["macs_fixed"], t["macs_per_op"], arch) / 1e6


PARAMS = Proxy("params", params, batch_size=None, reads_weights=False)
FLOPS = Proxy("flops", flops, batch_size=None, reads_weights=False)
