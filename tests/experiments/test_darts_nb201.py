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
