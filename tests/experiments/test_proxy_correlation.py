import csv
import json

import numpy as np
import pytest
from scipy import stats

from experiments import proxy_correlation


def test_outputs_resume_and_correlations(tmp_path, data_dir):
    out = tmp_path / "run"
    argv = ["--n", "70", "--proxies", "params,flops", "--data-dir", str(data_dir), "--out", str(out), "--seed", "3"]
    corr = proxy_correlation.main(argv)
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert len(rows) == 70 and len({r["arch_str"] for r in rows}) == 70
    # params proxy == the table's params column; correlations recomputed from the CSV.
    np.testing.assert_allclose([float(r["params"]) for r in rows], [float(r["params_M"]) for r in rows], rtol=1e-5)
    for col in ("c10_test_acc_200ep", "c10valid_val_acc_12ep"):
        acc = [float(r[col]) for r in rows]
        rho = stats.spearmanr([float(r["flops"]) for r in rows], acc).statistic
        assert corr[col]["flops"]["spearman"] == pytest.approx(rho, abs=1e-9)
        assert corr[col]["flops"]["n"] == 70
    assert json.loads((out / "correlations.json").read_text()) == corr
    assert (out / "scatter.png").stat().st_size > 10_000
    # Resume: finished blocks are reused, not recomputed (a planted value survives) and a
    # missing block is computed again.
    lines = (out / "partial.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["values"][0] = 123.0
    (out / "partial.jsonl").write_text("\n".join([json.dumps(first)] + lines[1:-1]) + "\n")
    proxy_correlation.main(argv)
    again = list(csv.DictReader(open(out / "scores.csv")))
    assert float(again[first["start"]][first["proxy"]]) == 123.0
    assert [r["flops"] for r in again] == [r["flops"] for r in rows]
    # A different sample in the same folder is refused.
    with pytest.raises(ValueError, match="other settings"):
        proxy_correlation.main(argv[:1] + ["71"] + argv[2:])


def test_bad_arguments(tmp_path, data_dir, monkeypatch):
    monkeypatch.delenv("JNAS_DATA", raising=False)
    with pytest.raises(ValueError, match="unknown proxy 'zen'"):
        proxy_correlation.main(["--proxies", "zen", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="--n must"):
        proxy_correlation.main(["--n", "lots", "--proxies", "params", "--data-dir", str(data_dir), "--out", str(tmp_path / "b")])
    with pytest.raises(ValueError, match="unknown --init 'fresh'"):
        proxy_correlation.main(["--init", "fresh", "--proxies", "params", "--data-dir", str(data_dir), "--out", str(tmp_path / "d")])
    with pytest.raises(FileNotFoundError, match="nb201_cifar10.csv.gz"):
        proxy_correlation.main(["--proxies", "params", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "c")])
