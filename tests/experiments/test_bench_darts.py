import json

import pytest

from experiments import bench_darts

RECORDS = [  # the form ../shared/peers/torch_proxy_bench.py writes
    {"proxy": "naswot", "sec_per_step_median": 9.0},
    {"proxy": "darts_v1_first_order_step", "sec_per_step_median": 2.0},
    {"proxy": "darts_v2_second_order_step", "sec_per_step_median": 5.0},
]


def test_reference_steps_are_read_and_bad_files_named(tmp_path):
    ref = tmp_path / "results.jsonl"
    ref.write_text("\n".join(json.dumps(r) for r in RECORDS))
    assert bench_darts.reference_steps(str(ref)) == {"darts_v1_first_order_step": 2.0, "darts_v2_second_order_step": 5.0}
    with pytest.raises(FileNotFoundError, match="missing.jsonl not found: run ../shared/peers/torch_proxy_bench.py"):
        bench_darts.main(["--reference", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "run")])
    ref.write_text(json.dumps(RECORDS[0]))
    with pytest.raises(ValueError, match="holds no DARTS step records"):
        bench_darts.main(["--reference", str(ref), "--out", str(tmp_path / "run")])
    with pytest.raises(ValueError, match="compares with --space nb201 only"):
        bench_darts.main(["--space", "darts", "--reference", str(ref), "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()  # refused before any output


@pytest.mark.slow  # compiles a search step (about 30 s)
def test_rows_carry_compile_time_and_the_ratio_to_the_reference(tmp_path, data_dir):
    ref = tmp_path / "results.jsonl"
    ref.write_text("\n".join(json.dumps(r) for r in RECORDS))
    args = ["--estimators", "first_order", "--C", "2", "--N", "1", "--batch", "4", "--repeats", "1",
            "--data-dir", str(data_dir), "--reference", str(ref), "--out", str(tmp_path / "run")]
    (row,) = bench_darts.main(args)
    assert row["step_s"] > 0 and row["compile_s"] > 0 and row["ratio_to_first_order"] == 1.0
    assert row["reference_step_s"] == 2.0 and row["ratio_to_reference"] == pytest.approx(row["step_s"] / 2.0)
    assert json.loads((tmp_path / "run" / "bench_darts.json").read_text())["rows"] == [row]


@pytest.mark.slow  # compiles a DARTS-space search step (about 6 minutes on 2 cores)
def test_darts_space_rows(tmp_path, data_dir):
    args = ["--space", "darts", "--estimators", "first_order", "--C", "2", "--layers", "3", "--batch", "2", "--repeats", "1",
            "--data-dir", str(data_dir), "--out", str(tmp_path / "run")]
    (row,) = bench_darts.main(args)
    meta = json.loads((tmp_path / "run" / "bench_darts.json").read_text())
    assert row["step_s"] > 0 and meta["space"] == "darts" and meta["layers"] == 3 and meta["depthwise"] == "dense"
