"""experiments.darts_pipeline end to end at tiny sizes (slow: several minutes on 2 cores,
mostly compiling the DARTS supernet and evaluation networks): published genotypes' parameter
counts, the derived genotype equal to the search log's last one, and a rerun that resumes
without searching or training again."""

import json

import pytest

from experiments import darts_pipeline
from jnas.spaces import darts

ARGS = ["--methods", "darts1", "--C", "4", "--layers", "3", "--epochs", "1", "--batch", "16", "--n-images", "64",
        "--eval-C", "4", "--eval-layers", "3", "--eval-epochs", "1", "--eval-batch", "32", "--eval-images", "96"]


@pytest.mark.slow
def test_tiny_pipeline_derives_trains_and_resumes(tmp_path, data_dir):
    summary = darts_pipeline.main(ARGS + ["--data-dir", str(data_dir), "--out", str(tmp_path)])
    for name in ("DARTS_V2", "PC_DARTS", "PDARTS"):
        published = 1e6 * darts.PUBLISHED_PARAMS_M[name]
        assert abs(summary["genotype_params"][name] - published) <= 0.02 * published
    log = [json.loads(line) for line in (tmp_path / "search_darts1" / "alpha.jsonl").read_text().splitlines()]
    found = summary["searched"]["darts1"]
    assert found["genotype"] == log[-1]["genotype"] and darts.from_string(found["genotype"]).shape == (2, 4, 2, 2)
    assert 0.0 <= found["test_acc"] <= 100.0 and found["params"] > 0
    assert summary["references"]["DARTS_V2"]["params_c36_20"] == summary["genotype_params"]["DARTS_V2"]
    before = (tmp_path / "results.jsonl").read_text()
    again = darts_pipeline.main(ARGS + ["--data-dir", str(data_dir), "--out", str(tmp_path)])
    assert (tmp_path / "results.jsonl").read_text() == before and again["searched"] == summary["searched"]


def test_unknown_method_or_genotype_fails_before_any_work(tmp_path, data_dir):
    with pytest.raises(ValueError, match="each must be one of"):
        darts_pipeline.main(["--methods", "darts3", "--data-dir", str(data_dir), "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="unknown DARTS genotype 'NASNet'"):
        darts_pipeline.main(["--references", "NASNet", "--data-dir", str(data_dir), "--out", str(tmp_path)])
