"""experiments.curve_extrapolation at toy size: errors re-derived from the recorded curves,
and a rerun resumes (no retraining, no refitting)."""

import csv
import json

import pytest

from experiments import curve_extrapolation


@pytest.mark.slow
def test_errors_follow_the_curves_and_rerun_resumes(tmp_path, data_dir):
    argv = ["--n-archs", "2", "--epochs", "4", "--fractions", "0.5,0.75", "--C", "4", "--mcmc-steps", "60",
            "--data-dir", str(data_dir), "--out", str(tmp_path)]
    summary = curve_extrapolation.main(argv)
    runs = json.loads((tmp_path / "curves.json").read_text())
    assert len(runs) == 2 and all(len(c) == 4 for c in runs.values())
    with open(tmp_path / "errors.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 13  # archs x fractions x (11 models + ensemble + last value)
    for r in rows:
        assert float(r["actual"]) == pytest.approx(runs[r["arch"]][-1])
        if r["model"] == "last_value":  # the baseline predicts the last observed point
            n_obs = max(2, round(float(r["fraction"]) * 4))
            assert float(r["predicted"]) == pytest.approx(runs[r["arch"]][n_obs - 1])
    stamp = (tmp_path / "fits.jsonl").stat().st_mtime_ns
    assert curve_extrapolation.main(argv) == summary
    assert (tmp_path / "fits.jsonl").stat().st_mtime_ns == stamp  # nothing refitted


def test_a_fraction_that_sees_the_whole_curve_is_refused(tmp_path):
    assert curve_extrapolation.observed_epochs(0.5, 4) == 2
    assert curve_extrapolation.observed_epochs(0.01, 15) == 2  # a fit needs two points
    with pytest.raises(ValueError, match="--fractions 0.9 of --epochs 3 observes 3 of 3 epochs, the whole curve"):
        curve_extrapolation.main(["--fractions", "0.5,0.9", "--epochs", "3", "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()
