"""experiments.search_nb201: the summary schema, curves re-derived from the table, and the
driver mode agreeing with the vmapped mode."""

import csv
import json

import numpy as np

from experiments import search_nb201


def test_summary_and_curves(tmp_path, data_dir, table):
    base = ["--strategy", "rea", "--budget", "30", "--seeds", "3", "--fitness", "c10valid_val_acc_12ep",
            "--report", "hw_c10_edgegpu_latency", "--data-dir", str(data_dir)]
    s = search_nb201.main(base + ["--out", str(tmp_path / "vmap")])
    assert set(s) >= {"strategy", "fitness", "report", "budget", "report_mean", "report_std", "seeds"}
    assert (s["strategy"], s["fitness"], s["report"], s["budget"], s["seeds"]) == (
        "rea", "c10valid_val_acc_12ep", "hw_c10_edgegpu_latency", 30, 3)
    with open(tmp_path / "vmap" / "curves.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 90
    fit = np.asarray(table.columns["c10valid_val_acc_12ep"])
    rep = np.asarray(table.columns["hw_c10_edgegpu_latency"])
    # Every incumbent's (fitness, report) pair is a row of the table.
    pairs = set(zip(fit.tolist(), rep.tolist()))
    assert all((float(r["best_fitness"]), float(r["best_report"])) in pairs for r in rows)
    finals = [float(r["best_report"]) for r in rows if r["evaluation"] == "30"]
    assert abs(s["report_mean"] - np.mean(finals)) < 1e-4
    d = search_nb201.main(base + ["--mode", "driver", "--out", str(tmp_path / "driver")])
    assert abs(d["report_mean"] - s["report_mean"]) < 1e-4
    assert len((tmp_path / "driver" / "logs" / "seed_0.jsonl").read_text().splitlines()) == 30
    assert json.loads((tmp_path / "driver" / "summary.json").read_text())["seeds"] == 3
