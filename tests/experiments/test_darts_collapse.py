import json

import pytest

from experiments import darts_collapse


@pytest.mark.slow
def test_tiny_collapse_study_summary(tmp_path, data_dir, table):
    args = ["--epochs", "2", "--n-images", "128", "--C", "4", "--batch", "32", "--hessian-images", "8",
            "--rank-cells", "20",
            "--remedies", "sdarts-rs", "--data-dir", str(data_dir), "--out", str(tmp_path)]
    s = darts_collapse.main(args)
    assert len(s["derived_test_acc"]) == len(s["hessian_eigenvalue"]) == len(s["parameter_free_share"]) == 2
    assert s["early_stop"] is None and s["remedies"]["darts-es"] == s["derived_test_acc"][-1]  # too short to fire
    assert s["remedies"]["sdarts-rs"] == s["per_method"]["sdarts-rs"]["derived_test_acc"][-1]
    assert all(0.0 <= v <= 1.0 for v in s["parameter_free_share"])
    for m in ("darts1", "sdarts-rs"):  # 20 cells ranked by each final supernet (64 validation images)
        r = s["rank_disorder"][m]
        assert r["cells"] == r["cells_in_table"] == 20 and r["images"] == 64 and -1.0 <= r["kendall_tau"] <= 1.0
    assert json.loads((tmp_path / "summary.json").read_text())["remedies"] == s["remedies"]
    assert (tmp_path / "collapse.png").exists()
    assert darts_collapse.main(args) == s  # a rerun resumes every finished search and rebuilds the same summary
    fresh = darts_collapse.main(args[:-1] + [str(tmp_path / "again")])  # from scratch, same seed: same numbers
    assert {k: v for k, v in fresh.items() if k != "setting"} == {k: v for k, v in s.items() if k != "setting"}


def test_unknown_remedy_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"--remedies \['dartz'\] are not darts_nb201 methods"):
        darts_collapse.main(["--remedies", "dartz", "--out", str(tmp_path)])
