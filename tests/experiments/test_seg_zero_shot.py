"""experiments.seg_zero_shot end to end on the tiny hybrid space (slow: about 10 minutes on 2
cores, mostly compiling the five proxies on the supernet): the summary is re-derived from the
training records, the correlations from scipy on the written CSVs, and a rerun resumes
without scoring or training anything again."""

import csv
import json

import numpy as np
import pytest
from scipy import stats

from experiments import seg_zero_shot

ARGS = ["--space", "tiny", "--candidates", "24", "--random", "3", "--seeds", "2", "--epochs", "1", "--generations", "1",
        "--population", "8", "--rea-evaluations", "8", "--loop-check", "2", "--resolution", "32", "--chunk", "8",
        "--latency-threads", "1", "--search-resolutions", "32"]


@pytest.mark.slow
def test_tiny_pipeline_summary_is_rederived_from_its_records(tmp_path, data_dir):
    summary = seg_zero_shot.main(ARGS + ["--data-dir", str(data_dir), "--out", str(tmp_path)])
    recs = [json.loads(line) for line in (tmp_path / "trainings.jsonl").read_text().splitlines()]
    by = {(r["name"], r["seed"]): r for r in recs}
    for name, e in summary["baseline"].items():
        d = [by[(name, s)]["dice"] for s in range(2)]
        assert e["dice_mean"] == pytest.approx(np.mean(d)) and e["dice_std"] == pytest.approx(np.std(d, ddof=1))
    for i, f in enumerate(summary["found"]):
        assert f["arch"].startswith("r32|")  # searched at the evaluation resolution only
        assert f["flops"] <= summary["flops_budget"] * 1.25  # analytic budget, XLA count (within 20% at tiny sizes)
        assert f["dice_mean"] == pytest.approx(np.mean([by[(f"found_{i + 1}", s)]["dice"] for s in range(2)]))
    with open(tmp_path / "candidates.csv") as fh:
        cands = {r["arch"]: r for r in csv.DictReader(fh)}
    rand = [by[(f"random_{i + 1}", 0)] for i in range(3)]
    dice = [r["dice"] for r in rand]
    for proxy in summary["proxies"]:
        tau = stats.kendalltau([float(cands[r["arch"]][proxy]) for r in rand], dice)[0]
        assert summary["proxy_dice_kendall"][proxy] == pytest.approx(tau)
    assert summary["scoring"]["loop_max_rel_diff"] < 1e-3  # batched scores equal the loop's
    names = [r["name"] for r in recs]  # the trainings that need no search come first
    assert max(names.index(n) for n in names if not n.startswith("found")) < names.index("found_1")
    assert all(f["latency_cpu1"] > 0 for f in summary["found"])  # predicted from the table at summary time
    before = (tmp_path / "trainings.jsonl").read_text()
    again = seg_zero_shot.main(ARGS + ["--data-dir", str(data_dir), "--out", str(tmp_path)])
    assert (tmp_path / "trainings.jsonl").read_text() == before and again["found"] == summary["found"]
