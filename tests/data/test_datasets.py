"""Datasets by name, the offline TFDS path, splits, augmentation and batching."""

import importlib.util
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas import data
from tests.conftest import REPO

FIXTURE = REPO / "third_party" / "tfds_fixture"
sys.path.insert(0, str(FIXTURE))
from make_fixture import SIZES, pattern  # noqa: E402  (numpy-only part of the fixture script)


def isolated(monkeypatch, tmp_path):
    """No JNAS_DATA and an empty TFDS default, so only the data_dir argument counts."""
    monkeypatch.delenv("JNAS_DATA", raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "empty_tfds"))


@pytest.mark.skipif(importlib.util.find_spec("tensorflow_datasets") is None, reason="needs the tfds extra")
@pytest.mark.parametrize("name,shape", [("cifar10", (32, 32, 3)), ("mnist", (28, 28, 1))])
@pytest.mark.parametrize("split", ["train", "test"])
def test_tfds_copy_is_read_offline_pixel_exact(name, shape, split, monkeypatch, tmp_path):
    isolated(monkeypatch, tmp_path)
    d = data.load(name, split, FIXTURE, source="tfds")
    assert d.origin.startswith("tfds:") and len(d) == SIZES[split]
    # Recompute every example from the generator's formula. CIFAR-10 has example ids, so
    # jnas returns them in id order; MNIST has none and keeps TFDS's record order.
    expected = {}
    for i in range(SIZES[split]):
        label = (i * 3 + (split == "test")) % 10
        expected[pattern(i, label, shape).tobytes()] = (i, label)
    seen = [expected[d.x[j].tobytes()] for j in range(len(d))]  # KeyError: a pixel is wrong
    assert sorted(i for i, _ in seen) == list(range(SIZES[split]))
    assert [lab for _, lab in seen] == list(d.y)
    if name == "cifar10":
        assert [i for i, _ in seen] == list(range(SIZES[split]))
    assert "tensorflow" not in sys.modules  # reading needs no tensorflow


def test_local_arrays_through_the_same_interface(data_dir, monkeypatch, tmp_path):
    isolated(monkeypatch, tmp_path)
    d = data.load("cifar10", "test", data_dir)
    assert d.origin.startswith("local:") and d.x.dtype == np.uint8 and d.x.shape == (1017, 32, 32, 3)
    x_ref, y_ref = data.load_cifar10_subset(data_dir, "test", normalize=False)
    np.testing.assert_array_equal(d.x, np.round(x_ref * 255).astype(np.uint8))
    np.testing.assert_array_equal(d.y, y_ref)
    m = data.load("mnist", "test", data_dir)
    assert m.x.shape[1:] == (28, 28, 1) and m.spec.num_classes == 10


def test_missing_data_names_every_place_and_the_source(monkeypatch, tmp_path):
    isolated(monkeypatch, tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        data.load("cifar10", "train", tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "tfds" / "cifar10") in msg and "cifar10_subset/cifar10_subset.npz" in msg
    assert "cs.toronto.edu" in msg and "JNAS_DATA" in msg
    with pytest.raises(FileNotFoundError, match="ships no local array copy"):
        data.load("fashion_mnist", "train", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*cifar10"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="unknown source"):
        data.load("cifar10", source="web")


def test_split_and_subset_are_seeded_partitions(data_dir, key):
    d = data.load("cifar10", "train", data_dir, source="local")
    a, b = data.split(d, key)
    a2, _ = data.split(d, key)
    np.testing.assert_array_equal(a.y, a2.y)  # same key, same split
    assert len(a) + len(b) == len(d) and abs(len(a) - len(b)) <= 1
    # A partition: the two halves' pixel sums add up to the whole.
    assert a.x.astype(np.int64).sum() + b.x.astype(np.int64).sum() == d.x.astype(np.int64).sum()
    c, _ = data.split(d, jax.random.key(1))
    assert not np.array_equal(a.y, c.y)
    s = data.subset(d, 0.1, key)
    assert len(s) == round(0.1 * len(d))
    with pytest.raises(ValueError, match="fraction"):
        data.subset(d, 0.0, key)


def test_epoch_batches_deterministic_and_cover_the_data(key):
    spec = data.DATASETS["cifar10"]
    d = data.ImageData(np.zeros((10, 1, 1, 1), np.uint8), np.arange(10, dtype=np.int32), spec, "test")
    run1 = [y for _, y in data.epoch_batches(d, 3, key, epoch=2)]
    run2 = [y for _, y in data.epoch_batches(d, 3, key, epoch=2)]
    assert [list(r) for r in run1] == [list(r) for r in run2] and len(run1) == 3
    other = np.concatenate([y for _, y in data.epoch_batches(d, 3, key, epoch=3)])
    assert not np.array_equal(np.concatenate(run1), other[:9])
    full = np.concatenate([y for _, y in data.epoch_batches(d, 3, key, 0, shuffle=False, drop_last=False)])
    np.testing.assert_array_equal(full, np.arange(10))


def test_augment_is_a_padded_crop_and_flip(key):
    x = jax.random.normal(key, (64, 8, 8, 2))
    out = data.augment(jax.random.key(3), x)
    padded = np.pad(np.asarray(x), ((0, 0), (4, 4), (4, 4), (0, 0)))
    # Brute force: each output is one of the 9 x 9 crops of its padded input, maybe flipped.
    flips = 0
    for i in range(len(x)):
        hits = [(r, c, f) for r in range(9) for c in range(9) for f in (0, 1)
                if np.allclose((lambda w: w[:, ::-1] if f else w)(padded[i, r:r + 8, c:c + 8]), out[i])]
        assert hits, f"image {i} is not a crop of its padded input"
        flips += hits[0][2]
    assert 16 <= flips <= 48  # p = 1/2 over 64 images (about 4 standard deviations)
    np.testing.assert_array_equal(out, data.augment(jax.random.key(3), x))


def test_normalize_matches_numpy():
    x = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3) * 10
    spec = data.DATASETS["cifar10"]
    ref = (x / 255.0 - np.array(spec.mean)) / np.array(spec.std)
    np.testing.assert_allclose(data.normalize(jnp.asarray(x), spec.mean, spec.std), ref, rtol=1e-5)
