"""experiments.multifidelity on the NB201 table: reported numbers re-derived from the table,
and a rerun resumes from the stored evaluations."""

import csv
import json

import numpy as np

from experiments import multifidelity
from jnas.spaces import nb201 as space


def test_reports_come_from_the_table_and_rerun_resumes(tmp_path, data_dir, table):
    argv = ["--method", "all", "--seeds", "2", "--cost", "1500", "--data-dir", str(data_dir), "--out", str(tmp_path)]
    summary = multifidelity.main(argv)
    assert set(summary["methods"]) == {"sh", "hb", "bohb", "asha", "dehb", "rs"}
    fit = np.asarray(table.columns["c10valid_val_acc_200ep"])
    rep = np.asarray(table.columns["c10_test_acc_200ep"])
    for path in (tmp_path / "evals").glob("*.jsonl"):
        recs = [json.loads(line) for line in path.read_text().splitlines()]
        assert 1500 <= sum(c for r in recs for c in r["cost"]) < 1500 + 200  # the crossing evaluation is the last
        for r in recs:
            (arch,), (budget,), (cost,), (value,), (report,) = r["archs"], r["budgets"], r["cost"], r["fitness"], r["report"]
            i = int(space.to_index(np.array(arch)))
            assert report == np.float32(rep[i])
            assert cost == (200 if budget > 200 - 1e-6 else 12)
            if cost == 200:
                assert value == np.float32(fit[i])
            else:
                assert value == np.float32(table.columns["c10valid_val_acc_12ep"][i])
    with open(tmp_path / "curves.csv") as f:
        before = list(csv.DictReader(f))
    stamp = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "evals").glob("*.jsonl")}
    again = multifidelity.main(argv)
    with open(tmp_path / "curves.csv") as f:
        assert list(csv.DictReader(f)) == before
    assert again == summary
    assert stamp == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "evals").glob("*.jsonl")}  # nothing re-evaluated
