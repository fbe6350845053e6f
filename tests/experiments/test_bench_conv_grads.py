import json

from experiments import bench_conv_grads
from jnas.nets.kernels import CONV_GRADS


def test_writes_every_case_with_its_ratio(tmp_path):
    rows = bench_conv_grads.main(["--out", str(tmp_path), "--batch", "2", "--side", "6", "--channels", "3", "--reps", "1"])
    assert len(rows) == 2 * 2 * 3 * len(CONV_GRADS)  # kernels x gradients x settings x conv_grads
    saved = json.loads((tmp_path / "bench_conv_grads.json").read_text())
    assert saved == rows and (tmp_path / "bench_conv_grads.png").stat().st_size > 0
    for r in rows:
        assert r["ms"] > 0
        if (r["setting"], r["conv_grads"]) == ("plain", "xla"):
            assert r["x_plain_xla"] == 1.0
