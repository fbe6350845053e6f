import csv
import json
import re
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments import profile_proxies as pp
from jnas.nets import NB201Network
from jnas.nets import kernels as conv
from jnas.spaces import nb201 as space


def _net(x, w, m, flag):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
    z = jax.nn.relu(y).reshape(x.shape[0], -1)
    return jax.lax.cond(flag > 0, lambda z: z @ m, lambda z: z[:, : m.shape[1]], z)


def test_ops_are_charged_to_what_they_compute():
    # A conv, a ReLU and a matmul inside a conditional: each traced op must be found in the
    # HLO with the right category, and own times (nesting removed) must fit in the traced
    # call, which runs its ops one after another.
    k = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(k[0], (32, 32, 32, 16))
    w = jax.random.normal(k[1], (3, 3, 16, 16))
    m = jax.random.normal(k[2], (32 * 32 * 16, 256))
    exe = jax.jit(_net).lower(x, w, m, 1).compile()
    cats = pp.hlo_categories(exe.as_text())
    assert set(cats.values()) <= set(pp.CATEGORIES)
    found = set(cats.values())
    assert {"convolution", "matmul", "control flow"} <= found, found
    # Independent evidence: the JAX primitive each instruction came from (HLO metadata).
    # XLA:CPU wraps the matmul in a library fusion, so this also checks fusion lookup.
    prims = dict(re.findall(r'%?([\w.\-]+) = [^\n]*op_name="[^"]*/(\w+)"', exe.as_text()))
    want = {"conv_general_dilated": "convolution", "dot_general": "matmul"}
    checked = [n for n, prim in prims.items() if prim in want and n in cats and not n.startswith(("param", "get-tuple"))]
    assert any(n.startswith("ynn_fusion") or "fusion" in n for n in checked), checked
    for n in checked:
        assert cats[n] == want[prims[n]], (n, prims[n], cats[n])
    jax.block_until_ready(exe(x, w, m, 1))
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp):
            t = time.perf_counter()
            jax.block_until_ready(exe(x, w, m, 1))
            wall = time.perf_counter() - t
        (xspace,) = Path(tmp).glob("**/*.xplane.pb")
        module = exe.as_text().split()[1].rstrip(",")
        own = pp.self_times(xspace, module)
    assert own and set(own) <= set(cats), set(own) - set(cats)
    by_cat = {c: sum(t for op, t in own.items() if cats[op] == c) for c in pp.CATEGORIES}
    assert by_cat["convolution"] > 0 and by_cat["matmul"] > 0
    assert all(t >= 0 for t in own.values())
    assert sum(own.values()) <= wall * 1.05
    # The conditional's own time excludes the matmul it runs.
    assert by_cat["control flow"] < by_cat["matmul"]


def _nested(rng, a, b, depth, name):
    """Random properly nested events inside [a, b): (start, duration, op)."""
    out, t = [], a
    while depth and t < b - 2 and rng.random() < 0.8:
        s = int(rng.integers(t, b - 1))
        e = int(rng.integers(s + 1, b + 1))
        op = f"{name}.{len(out)}"
        out.append((s, e - s, op))
        out += _nested(rng, s, e, depth - 1, op)
        t = e
    return out


def test_wall_charges_match_a_brute_force_timeline():
    # Random nested events on three lines (threads) that overlap in time; the reference
    # walks the timeline one tick at a time: on each line the innermost event containing
    # the tick is running, and a tick with k lines running gives each of them 1/k.
    rng = np.random.default_rng(0)
    for trial in range(30):
        lines = [_nested(rng, 0, 60, 3, f"L{i}") for i in range(3)]
        lines = [events for events in lines if events]
        ref = {}
        for t in range(60):
            running = []
            for events in lines:
                inside = [(s, -d, op) for s, d, op in events if s <= t < s + d]
                if inside:
                    running.append(max(inside)[2])  # latest start; at equal starts the shorter
            for op in running:
                ref[op] = ref.get(op, 0.0) + 1.0 / len(running)
        got = pp.wall_charges(lines)
        assert set(got) == set(ref), (trial, set(got) ^ set(ref))
        for op in ref:
            assert abs(got[op] - ref[op]) < 1e-9, (trial, op, got[op], ref[op])
        busy = sum(1 for t in range(60) if any(s <= t < s + d for events in lines for s, d, _ in events))
        assert abs(sum(got.values()) - busy) < 1e-9


@pytest.mark.slow  # twins: the op-charging and timeline tests above
def test_profile_writes_shares_and_ceiling(tmp_path, data_dir):
    records = pp.main(["--data-dir", str(data_dir), "--out", str(tmp_path), "--proxies", "naswot", "--n", "2",
                       "--C", "2", "--N", "1", "--top", "5", "--matmul-n", "256"])
    (r,) = records
    assert json.loads((tmp_path / "profile.json").read_text()) == records
    assert (tmp_path / "profile.png").stat().st_size > 0
    assert abs(sum(r["shares"].values()) - 1.0) < 1e-9
    assert r["shares"]["convolution"] > 0 and r["shares"]["matmul"] > 0  # NASWOT's kernel is a matmul
    # Untraced time is the wall time the traced ops do not cover (never negative).
    assert abs(r["seconds"]["untraced"] - max(r["wall_s"] - r["traced_op_s"], 0.0)) < 1e-12
    # The convolutions' time is the wall time minus the convolution-free run's.
    assert 0 < r["conv_free_s"] and abs(r["conv_s"] - (r["wall_s"] - r["conv_free_s"])) < 1e-12
    if r["conv_s"] > 0:
        assert abs(r["ceiling"] - r["flop_bound_s"] / r["conv_s"]) < 1e-12
    assert abs(r["fraction_of_bound"] - r["flop_bound_s"] / r["wall_s"]) < 1e-12
    rows = list(csv.DictReader(open(tmp_path / "ops.csv")))
    assert 0 < len(rows) <= 5 and all(row["category"] in pp.CATEGORIES for row in rows)
    assert [float(row["seconds"]) for row in rows] == sorted((float(row["seconds"]) for row in rows), reverse=True)


def test_stand_in_convolutions_skip_the_arithmetic_and_restore_it_for_one_conv():
    # The fast twin of the network case below: one jitted convolution gives a constant map of
    # the right shape inside, the real one again outside.
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    k = jax.random.normal(jax.random.key(1), (3, 3, 3, 2))
    stem = jax.jit(lambda x, k: conv.conv_general_dilated(x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=conv.NHWC))
    real = stem(x, k)
    with pp.stand_in_convolutions():
        y = stem(x, k)
        assert y.shape == (4, 8, 8, 2) and float(y.max()) == float(y.min())
    np.testing.assert_array_equal(stem(x, k), real)
    assert float(real.max()) != float(real.min())


@pytest.mark.slow  # twin: the one-convolution case above
def test_stand_in_convolutions_skip_the_arithmetic_and_restore_it():
    # Inside, a network's convolutions give constant maps of the right shape (so its
    # output changes); outside, the same jitted function gives the real output again.
    net = NB201Network(C=2, N=1, conv_grads="explicit")
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    arch = space.from_string("|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    variables = jax.jit(net.init)(jax.random.key(1), x, arch)
    f = jax.jit(lambda v, x: jax.grad(lambda x: net.apply(v, x, arch, mutable=["batch_stats"])[0].sum())(x))
    real = f(variables, x)
    stem = jax.jit(lambda x, k: conv.conv_general_dilated(x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=conv.NHWC))
    k = variables["params"]["stem"]["kernel"]
    with pp.stand_in_convolutions():
        fake = f(variables, x)
        y = stem(x, k)
        assert y.shape == (4, 8, 8, 2) and float(y.max()) == float(y.min())
    assert not np.allclose(fake, real)
    np.testing.assert_array_equal(f(variables, x), real)
    y = stem(x, k)
    assert float(y.max()) != float(y.min())
