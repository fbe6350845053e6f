import csv
import json
import re
import tempfile
import time
from pathlib import Path

import jax

from experiments import profile_proxies as pp


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


def test_profile_writes_shares_and_ceiling(tmp_path, data_dir):
    records = pp.main(["--data-dir", str(data_dir), "--out", str(tmp_path), "--proxies", "naswot", "--n", "2",
                       "--C", "4", "--N", "1", "--top", "5"])
    (r,) = records
    assert json.loads((tmp_path / "profile.json").read_text()) == records
    assert (tmp_path / "profile.png").stat().st_size > 0
    assert abs(sum(r["shares"].values()) - 1.0) < 1e-9
    assert r["shares"]["convolution"] > 0 and r["shares"]["matmul"] > 0  # NASWOT's kernel is a matmul
    # Untraced time is the wall time the traced ops do not cover (never negative).
    assert abs(r["seconds"]["untraced"] - max(r["wall_s"] - r["traced_op_s"], 0.0)) < 1e-12
    heavy = r["shares"]["convolution"] + r["shares"]["matmul"] + r["shares"]["untraced"]
    assert abs(r["ceiling"] * heavy - r["fraction_of_bound"]) < 1e-12 and r["ceiling"] >= r["fraction_of_bound"]
    assert abs(r["fraction_of_bound"] - r["flop_bound_s"] / r["wall_s"]) < 1e-12
    rows = list(csv.DictReader(open(tmp_path / "ops.csv")))
    assert 0 < len(rows) <= 5 and all(row["category"] in pp.CATEGORIES for row in rows)
    assert [float(row["seconds"]) for row in rows] == sorted((float(row["seconds"]) for row in rows), reverse=True)
