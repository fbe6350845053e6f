import json

import pytest

from experiments import oneshot_ranking

TINY = ["--C", "2", "--N", "1", "--epochs", "1", "--n-images", "600", "--cells", "30", "--calib-images", "32",
        "--eval-images", "64", "--eval-batch", "32", "--chunk", "8", "--evolution-budget", "12"]


def test_unknown_column_and_too_few_images_are_refused_before_output(tmp_path, data_dir):
    with pytest.raises(ValueError, match="no_such_column"):
        oneshot_ranking.main(["--column", "no_such_column", "--data-dir", str(data_dir), "--out", str(tmp_path / "a")])
    assert not (tmp_path / "a").exists()
    with pytest.raises(ValueError, match="cannot give one --eval-batch of 4096"):
        oneshot_ranking.main(TINY + ["--eval-batch", "4096", "--data-dir", str(data_dir), "--out", str(tmp_path / "b")])
    assert not (tmp_path / "b").exists()


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
