import json

import pytest

from experiments import darts_nb201
from jnas.oneshot import driver
from jnas.spaces import nb201 as space


@pytest.mark.slow
def test_search_resumes_after_a_kill_with_identical_results(tmp_path, data_dir, table, monkeypatch):
    args = ["--method", "darts1", "--epochs", "2", "--n-images", "256", "--C", "4", "--batch", "32", "--data-dir", str(data_dir)]
    ref = darts_nb201.main(args + ["--out", str(tmp_path / "a")])
    assert ref["accuracy"]["c10_test_acc_200ep"] == pytest.approx(float(table.query(space.from_string(ref["arch"]), "c10_test_acc_200ep")))

    real_make_step = driver.make_step
    calls = {"n": 0}

    def dying_make_step(*a, **k):
        step = real_make_step(*a, **k)

        def wrapped(*args):
            calls["n"] += 1
            if calls["n"] == 6:  # 4 steps per epoch: die inside epoch 2
                raise KeyboardInterrupt
            return step(*args)

        return wrapped

    monkeypatch.setattr(driver, "make_step", dying_make_step)
    with pytest.raises(KeyboardInterrupt):
        darts_nb201.main(args + ["--out", str(tmp_path / "b")])
    monkeypatch.setattr(driver, "make_step", real_make_step)
    resumed = darts_nb201.main(args + ["--out", str(tmp_path / "b")])
    assert resumed["final_weights"] == ref["final_weights"] and resumed["arch"] == ref["arch"]
    lines = [json.loads(s) for s in (tmp_path / "b" / "alpha.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]


def test_unknown_method(tmp_path):
    with pytest.raises(ValueError, match=r"--method must be one of \[.*'darts1'.*\], got 'darts3'"):
        darts_nb201.main(["--method", "darts3", "--out", str(tmp_path)])


@pytest.mark.slow
def test_per_epoch_derived_accuracy_curvature_and_random_smoothing(tmp_path, data_dir, table):
    args = ["--epochs", "2", "--n-images", "256", "--C", "4", "--batch", "32", "--data-dir", str(data_dir)]
    plain = darts_nb201.main(args + ["--method", "darts1", "--out", str(tmp_path / "a")])
    smooth = darts_nb201.main(args + ["--method", "sdarts-rs", "--hessian-images", "16", "--out", str(tmp_path / "b")])
    assert "hessian_eigenvalue" not in plain and len(plain["derived_test_acc"]) == 2
    lines = [json.loads(s) for s in (tmp_path / "b" / "alpha.jsonl").read_text().splitlines()]
    for rec, acc in zip(lines, smooth["derived_test_acc"]):
        assert acc == pytest.approx(float(table.query(space.from_string(rec["derived_arch"]), "c10_test_acc_200ep")))
    assert lines[-1]["derived_arch"] == smooth["arch"]
    ev = smooth["hessian_eigenvalue"]
    assert len(ev) == 2 and all(v == v and abs(v) > 0 for v in ev)
    assert smooth["early_stop"] is None  # two epochs: too short for the rule
    assert smooth["final_weights"] != plain["final_weights"]  # the same seed, but the weight step saw perturbed alpha
