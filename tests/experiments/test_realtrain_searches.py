"""experiments.psocnn_mnist and experiments.gnas_multiattr at toy scale on real MNIST: the
summaries are re-derived from the written evaluations, and a rerun resumes without
training anything again."""

import csv
import json

import numpy as np
import pytest

from experiments import gnas_multiattr, psocnn_mnist
from jnas.spaces import cnn_chain, tree


def _stamps(folder):
    """Modification times of the evaluation logs and of every checkpoint file."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")
            if p.is_file() and (p.suffix == ".jsonl" or any(q.endswith(".ckpt") for q in p.relative_to(folder).parts))}


@pytest.mark.slow  # integration scale (real MNIST training); psoCNN's moves are unit-tested in tests/strategies/test_psocnn.py
def test_psocnn_mnist_summary_and_resume(tmp_path, data_dir):
    argv = ["--swarm", "2", "--iterations", "1", "--n-train", "256", "--n-val", "128", "--max-layers", "4",
            "--max-channels", "4", "--max-units", "8", "--final-epochs", "1", "--data-dir", str(data_dir),
            "--out", str(tmp_path)]
    summary = psocnn_mnist.main(argv)
    recs = [json.loads(line) for line in (tmp_path / "evaluations.jsonl").read_text().splitlines()]
    fit = np.array([r["fitness"] for r in recs])
    archs = np.array([r["archs"] for r in recs]).reshape(-1, cnn_chain.ChainSpace(max_layers=4).width, 3)
    assert summary["evaluations"] == fit.size == 4
    assert summary["gbest_val_loss"] == float(np.float32(-fit.max()))
    assert summary["gbest"] == cnn_chain.to_string(cnn_chain.decode(archs[np.argmax(fit)]))
    with open(tmp_path / "iterations.csv") as f:
        rows = list(csv.DictReader(f))
    for r, f_ in zip(rows, fit):
        assert float(r["best"]) == float(np.float32(-f_.max()))  # lowest validation loss of the iteration
    stamp = _stamps(tmp_path)
    assert psocnn_mnist.main(argv) == summary
    assert _stamps(tmp_path) == stamp


@pytest.mark.slow  # integration scale (supernet training on MNIST); twins: tests/strategies/test_gnas.py, and the kill test resumes it
def test_gnas_multiattr_summary_and_resume(tmp_path, data_dir):
    argv = ["--hidden-blocks", "2", "--C", "2", "--sweeps", "1", "--steps-per-layer", "5", "--final-steps", "5",
            "--n-train", "256", "--n-val", "128", "--data-dir", str(data_dir), "--out", str(tmp_path)]
    summary = gnas_multiattr.main(argv)
    space = tree.TreeSpace((1, 2, 3))
    with open(tmp_path / "all_trees.csv") as f:
        every = list(csv.DictReader(f))
    assert len(every) == summary["trees"] == space.size() == 8
    rewards = {r["tree"]: float(r["reward"]) for r in every}
    for r in every:
        assert float(r["reward"]) == np.mean([float(r[a]) for a in ("digit", "odd", "ge5")])
    # the search's final reward was measured with the weights saved after it
    assert rewards[summary["tree"]] == summary["search_reward"]
    assert summary["rank_among_all_trees"] == 1 + sum(v > summary["search_reward"] + 1e-9 for v in rewards.values())
    steps = [json.loads(line) for line in (tmp_path / "search.jsonl").read_text().splitlines()]
    assert [s["layer"] for s in steps] == [1]  # the input layer has one choice
    assert steps[-1]["tree"] == summary["tree"]
    final = {r["name"]: r for r in summary["final"]}
    assert final["shared"]["tree"] == "0-0_0-0-0" and final["separate"]["tree"] == "0-0_0-1-1"
    for r in final.values():
        assert r["test_mean"] == np.mean([r["test_digit"], r["test_odd"], r["test_ge5"]])
    # used weights: conv 3x3x1x2 + bias 2 per hidden block on a path, heads (14*14*2 + 1) * classes
    assert final["shared"]["parameters"] == 1 * (9 * 2 + 2) + (392 + 1) * (10 + 2 + 2)
    assert final["separate"]["parameters"] == 2 * (9 * 2 + 2) + (392 + 1) * (10 + 2 + 2)
    stamp = _stamps(tmp_path)
    assert gnas_multiattr.main(argv) == summary
    assert _stamps(tmp_path) == stamp
