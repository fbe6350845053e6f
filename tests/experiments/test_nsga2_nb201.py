"""experiments.nsga2_nb201: hypervolume curves never decrease, the summary is re-derived from
the CSV, and evaluating every cell of the table gives a normalised hypervolume of exactly 1."""

import csv
import json

import numpy as np
import pytest

from experiments import nsga2_nb201
from jnas.spaces import nb201
from jnas.strategies import nsga2 as N, objectives


def test_summary_and_curves(tmp_path, data_dir):
    summary = nsga2_nb201.main(["--seeds", "3", "--generations", "3", "--population", "8", "--data-dir", str(data_dir),
                                "--out", str(tmp_path)])
    with open(tmp_path / "hypervolume.csv") as f:
        rows = list(csv.DictReader(f))
    for m in ("nsga2", "rs"):
        c = np.array([float(r["hypervolume"]) for r in rows if r["method"] == m]).reshape(3, 4)
        assert np.all(np.diff(c, axis=1) >= -1e-12) and np.all(c <= 1 + 1e-9)
        assert summary[f"{m}_hypervolume_mean"] == pytest.approx(c[:, -1].mean())
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_whole_table_has_hypervolume_one(table):
    names, signs = nsga2_nb201.parse_objectives("c10valid_val_acc_200ep:max,params_M:min", table)
    F = np.asarray(objectives.columns(table, names, signs)(nb201.enumerate_all()), np.float64)
    front = N.pareto_front(F)
    ref = F[front].min(0) - 1.0
    hv = N.hypervolume(F[front], ref)
    assert nsga2_nb201.hypervolume_curve(F, len(F), ref, hv)[-1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="write column:max or column:min"):
        nsga2_nb201.parse_objectives("c10valid_val_acc_200ep:up,params_M:min", table)
    with pytest.raises(ValueError, match="at least two objectives"):
        nsga2_nb201.parse_objectives("c10valid_val_acc_200ep:max", table)
