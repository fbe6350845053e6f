import numpy as np
import pytest

from jnas.data import load_cifar10_subset
from jnas.data.local import CIFAR10_MEAN, CIFAR10_STD


def test_cifar10_subset_is_real_and_normalised(data_dir):
    x, y = load_cifar10_subset(data_dir, "test", normalize=False)
    assert x.shape == (1017, 32, 32, 3) and y.dtype == np.int32
    # PROVENANCE.md: per-channel means near the CIFAR-10 reference 125.3/123.0/113.9 (/255).
    np.testing.assert_allclose(x.mean((0, 1, 2)) * 255, [125.3, 123.0, 113.9], atol=4.0)
    assert y[0] == 3  # test image 0 is the well-known cat
    xn, _ = load_cifar10_subset(data_dir, "test")
    np.testing.assert_allclose(xn, (x - CIFAR10_MEAN) / CIFAR10_STD, rtol=1e-6)


def test_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("JNAS_DATA", raising=False)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        load_cifar10_subset(tmp_path, "val")
    with pytest.raises(FileNotFoundError) as err:
        load_cifar10_subset(tmp_path)
    msg = str(err.value)
    assert "cifar10_subset/cifar10_subset.npz" in msg and str(tmp_path) in msg and "JNAS_DATA: not set" in msg
    (tmp_path / "cifar10_subset").mkdir()
    np.savez(tmp_path / "cifar10_subset" / "cifar10_subset.npz", x_train=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="malformed"):
        load_cifar10_subset(tmp_path)


def test_mnist_subset_is_real(data_dir, tmp_path, monkeypatch):
    from jnas.data import load_mnist_subset

    x, y = load_mnist_subset(data_dir, "test")
    assert x.shape == (10000, 28, 28, 1) and y.dtype == np.int32
    # PROVENANCE.md: official test label counts and first labels.
    np.testing.assert_array_equal(np.bincount(y), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    np.testing.assert_array_equal(y[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    assert abs(x.mean() - 0.1325) < 2e-3
    monkeypatch.delenv("JNAS_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="mnist/mnist_subset.npz"):
        load_mnist_subset(tmp_path)
