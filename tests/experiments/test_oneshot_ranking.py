import json

import numpy as np
import pytest

from experiments import oneshot_ranking
from jnas.spaces import nb201 as space

TINY = ["--C", "2", "--N", "1", "--epochs", "1", "--n-images", "600", "--cells", "30", "--calib-images", "32",
        "--eval-images", "64", "--eval-batch", "32", "--chunk", "8", "--evolution-budget", "12"]


def test_unknown_column_and_too_few_images_are_refused_before_output(tmp_path, data_dir):
    with pytest.raises(ValueError, match="no_such_column"):
        oneshot_ranking.main(["--column", "no_such_column", "--data-dir", str(data_dir), "--out", str(tmp_path / "a")])
    assert not (tmp_path / "a").exists()
    with pytest.raises(ValueError, match="cannot give one --eval-batch of 4096"):
        oneshot_ranking.main(TINY + ["--eval-batch", "4096", "--data-dir", str(data_dir), "--out", str(tmp_path / "b")])
    assert not (tmp_path / "b").exists()
    with pytest.raises(ValueError, match="--cells 7000 is more than the 6466 cells of --pool unique"):
        oneshot_ranking.main(TINY + ["--cells", "7000", "--pool", "unique", "--data-dir", str(data_dir), "--out", str(tmp_path / "c")])
    assert not (tmp_path / "c").exists()


@pytest.mark.slow  # trains a tiny supernet, scores 30 cells, runs a short evolution (about 1 minute)
def test_spos_run_writes_the_summary_and_resumes_without_recomputing(tmp_path, data_dir):
    args = TINY + ["--method", "spos", "--data-dir", str(data_dir), "--out", str(tmp_path / "run")]
    first = oneshot_ranking.main(args)
    assert first["n_cells"] == 30 and -1 <= first["kendall_tau"] <= 1 and first["search"]["evaluations"] == 12
    for name in ("scores.csv", "ranking.png", "evolution.jsonl"):
        assert (tmp_path / "run" / name).exists()
    scores = (tmp_path / "run" / "scores.jsonl").read_text()
    again = oneshot_ranking.main(args)
    assert (tmp_path / "run" / "scores.jsonl").read_text() == scores  # chunks read back, none recomputed
    assert {k: again[k] for k in ("kendall_tau", "picked_arch", "picked_test_acc")} == \
        {k: first[k] for k in ("kendall_tau", "picked_arch", "picked_test_acc")}
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["picked_arch"] == first["picked_arch"]


@pytest.mark.slow  # trains a tiny supernet / hypernetwork and scores 30 cells (about 40 s each)
@pytest.mark.parametrize("method", ["gdas", "ghn", "smash"])
def test_gdas_and_hypernetwork_runs_report_their_pick_and_the_loop_rate(tmp_path, data_dir, method):
    out = oneshot_ranking.main(TINY + ["--method", method, "--loop-cells", "4", "--hidden", "4", "--pool", "unique",
                                       "--data-dir", str(data_dir), "--out", str(tmp_path / method)])
    assert out["n_cells"] == 30 and out["method"] == method
    rates = out["archs_per_s"]
    assert rates["batched"] > 0 and rates["loop"] > 0 and rates["speedup"] == pytest.approx(rates["batched"] / rates["loop"])
    if method == "gdas":  # the pick is alpha's argmax cell, and the epoch log holds the mixing weights
        w = out["search"]["weights"]
        assert space.to_string(np.argmax(np.asarray(w), -1)) == out["picked_arch"]
        assert "weights" in json.loads((tmp_path / method / "train.jsonl").read_text().splitlines()[0])
    rows = (tmp_path / method / "scores.csv").read_text().splitlines()
    assert len(rows) == 31
    index = np.array([int(r.split(",")[1]) for r in rows[1:]])
    np.testing.assert_array_equal(np.asarray(space.canonical_table())[index], index)  # --pool unique: representatives only
