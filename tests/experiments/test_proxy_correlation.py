import csv
import json

import jax
import numpy as np
import pytest
from scipy import stats

from experiments import proxy_correlation


def test_outputs_resume_and_correlations(tmp_path, data_dir):
    out = tmp_path / "run"
    argv = ["--n", "70", "--proxies", "params,flops", "--data-dir", str(data_dir), "--out", str(out), "--seed", "3"]
    corr = proxy_correlation.main(argv)
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert len(rows) == 70 and len({r["arch_str"] for r in rows}) == 70
    # params proxy == the table's params column; correlations recomputed from the CSV.
    np.testing.assert_allclose([float(r["params"]) for r in rows], [float(r["params_M"]) for r in rows], rtol=1e-5)
    for col in ("c10_test_acc_200ep", "c10valid_val_acc_12ep"):
        acc = [float(r[col]) for r in rows]
        rho = stats.spearmanr([float(r["flops"]) for r in rows], acc).statistic
        assert corr[col]["flops"]["spearman"] == pytest.approx(rho, abs=1e-9)
        assert corr[col]["flops"]["n"] == 70
    assert json.loads((out / "correlations.json").read_text()) == corr
    assert (out / "scatter.png").stat().st_size > 10_000
    # Resume: finished blocks are reused, not recomputed (a planted value survives) and a
    # missing block is computed again.
    lines = (out / "partial.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["values"][0] = 123.0
    (out / "partial.jsonl").write_text("\n".join([json.dumps(first)] + lines[1:-1]) + "\n")
    proxy_correlation.main(argv)
    again = list(csv.DictReader(open(out / "scores.csv")))
    assert float(again[first["start"]][first["proxy"]]) == 123.0
    assert [r["flops"] for r in again] == [r["flops"] for r in rows]
    # A different sample in the same folder is refused.
    with pytest.raises(ValueError, match="other settings"):
        proxy_correlation.main(argv[:1] + ["71"] + argv[2:])


def test_bad_arguments(tmp_path, data_dir, monkeypatch):
    monkeypatch.delenv("JNAS_DATA", raising=False)
    with pytest.raises(ValueError, match="unknown proxy 'zen'"):
        proxy_correlation.main(["--proxies", "zen", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="--n must"):
        proxy_correlation.main(["--n", "lots", "--proxies", "params", "--data-dir", str(data_dir), "--out", str(tmp_path / "b")])
    with pytest.raises(ValueError, match=r"--init must be one of \['shared', 'per_arch'\], got 'fresh'"):
        proxy_correlation.main(["--init", "fresh", "--proxies", "params", "--data-dir", str(data_dir), "--out", str(tmp_path / "d")])
    with pytest.raises(ValueError, match="--batch must be one of .*got 'fresh'"):
        proxy_correlation.main(["--batch", "fresh", "--proxies", "params", "--data-dir", str(data_dir), "--out", str(tmp_path / "e")])
    with pytest.raises(ValueError, match="--net must be one of .*got 'resnet'"):
        proxy_correlation.main(["--net", "resnet", "--proxies", "params", "--data-dir", str(data_dir), "--out", str(tmp_path / "f")])
    with pytest.raises(FileNotFoundError, match="nb201_cifar10.csv.gz"):
        proxy_correlation.main(["--proxies", "params", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "c")])


def test_cell_batch_is_an_augmented_draw(data_dir):
    """Brute force: every image is a black-padded crop (offset 0..8), maybe flipped, of its source."""
    from jnas.data import load_cifar10_subset
    from jnas.data.local import CIFAR10_MEAN, CIFAR10_STD

    images, labels = load_cifar10_subset(data_dir, "train", normalize=False)
    images, labels = images[:40], labels[:40]
    key = jax.random.key(5)
    x, y = proxy_correlation.cell_batch(images, labels, key, 77, 8)
    x2, _ = proxy_correlation.cell_batch(images, labels, key, 77, 8)
    x3, _ = proxy_correlation.cell_batch(images, labels, key, 78, 8)
    np.testing.assert_array_equal(x, x2)
    assert not np.allclose(x, x3)
    raw = x * CIFAR10_STD + CIFAR10_MEAN
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    used = set()
    for img, label in zip(raw, y):
        hits = [(i, flip) for i in range(len(images)) for flip in (False, True) for r in range(9) for c in range(9)
                if np.allclose((padded[i, r:r + 32, c:c + 32, :][:, ::-1] if flip else padded[i, r:r + 32, c:c + 32, :]), img, atol=1e-5)]
        assert hits, "an image of the cell batch is no crop/flip of any training image"
        i = hits[0][0]
        assert labels[i] == label
        used.add(i)
    assert len(used) == 8  # drawn without replacement


@pytest.mark.slow
def test_per_cell_batches_score_each_cell_on_its_own_batch(tmp_path, data_dir):
    from jnas import proxies
    from jnas.data import load_cifar10_subset
    from jnas.spaces import nb201 as space

    out = tmp_path / "pb"
    proxy_correlation.main(["--n", "3", "--proxies", "naswot", "--batch", "per_arch", "--data-dir", str(data_dir),
                            "--out", str(out), "--seed", "1"])
    rows = list(csv.DictReader(open(out / "scores.csv")))
    _, k_img, k_init = jax.random.split(jax.random.key(1), 3)
    images, labels = load_cifar10_subset(data_dir, "train", normalize=False)
    for r in rows:
        arch = space.from_string(r["arch_str"])
        batch = proxy_correlation.cell_batch(images, labels, k_img, int(r["index"]), 128)
        alone = proxies.score("naswot", arch[None], batch, k_init, progress=False)[0]
        assert float(r["naswot"]) == pytest.approx(alone, rel=1e-6)
    x, y = load_cifar10_subset(data_dir, "train")
    shared = proxies.score("naswot", space.from_string(rows[0]["arch_str"])[None], (x[:128], y[:128]), k_init, progress=False)
    assert not np.allclose(shared, float(rows[0]["naswot"]))  # another batch gives another score


@pytest.mark.slow
def test_search_net_reaches_the_scorer(tmp_path, data_dir, monkeypatch):
    seen = []
    real = proxy_correlation.proxies.score

    def spy(*args, **kwargs):
        seen.append(kwargs["net"])
        return real(*args, **kwargs)

    monkeypatch.setattr(proxy_correlation.proxies, "score", spy)
    proxy_correlation.main(["--n", "2", "--proxies", "params", "--net", "search", "--data-dir", str(data_dir), "--out", str(tmp_path)])
    assert seen and all(n.cell_affine is False for n in seen)
    assert json.loads((tmp_path / "config.json").read_text())["net"] == "search"
