"""The benchmark's combination grammar and its resolution against each proxy's defaults."""

import pytest

from experiments import bench_proxies as bp
from jnas import proxies


def test_combos_parse_and_resolve_to_defaults():
    assert bp.parse_combos("map/switch//eigen,loop/mask/xla") == (("map", "switch", None, "eigen"), ("loop", "mask", "xla", None))
    assert bp.parse_combos("all")[0] == bp.BASELINE
    for bad in ("map", "map/switch/xla/eigen/x", "map/switch/fast", "map/switch/xla/mkl", "pmap/switch"):
        with pytest.raises(ValueError, match="bad combo"):
            bp.parse_combos(bad)
    naswot, synflow = proxies.get("naswot"), proxies.get("synflow")
    combos = bp.parse_combos("loop/switch/xla/ynnpack,map/switch,map/switch/xla")
    # map/switch and map/switch/xla resolve to one run for naswot (conv_grads "xla" by default)
    assert bp.resolve(combos, naswot) == [
        ("loop", "switch", "xla", "ynnpack"), ("map", "switch", "xla", proxies.default_conv_library(naswot))]
    # explicit gradients are dropped for forward-mode synflow
    assert bp.resolve(bp.parse_combos("map/switch/explicit,map/switch"), synflow) == [
        ("map", "switch", "xla", proxies.default_conv_library(synflow))]
