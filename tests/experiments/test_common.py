import jax
import numpy as np
import pytest

from experiments.common import use_compilation_cache


def test_compilation_cache_folder_from_the_environment(tmp_path, monkeypatch):
    # The folder is process-wide JAX configuration: unset it for the test, restore it after.
    before = jax.config.jax_compilation_cache_dir
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    try:
        for value, want in ((str(tmp_path / "xla"), str(tmp_path / "xla")), ("", None),
                            (None, str(tmp_path / "home" / ".cache" / "jnas" / "xla"))):
            jax.config.update("jax_compilation_cache_dir", None)
            if value is None:
                monkeypatch.delenv("JNAS_COMPILATION_CACHE", raising=False)
            else:
                monkeypatch.setenv("JNAS_COMPILATION_CACHE", value)
            assert use_compilation_cache() == want
            assert jax.config.jax_compilation_cache_dir == want
        assert use_compilation_cache() == want  # a folder already set is left alone
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


def test_rank_agreement_against_pair_counting_and_by_hand_top_sets():
    from experiments.common import rank_agreement

    rng = np.random.default_rng(0)
    scores, truth = rng.normal(size=40), rng.normal(size=40)
    truth[[3, 17]] = np.nan  # a cell missing from the table is left out
    ok = np.isfinite(truth)
    s, t = scores[ok], truth[ok]
    pairs = [(i, j) for i in range(len(s)) for j in range(i + 1, len(s))]
    brute = sum(np.sign(s[i] - s[j]) * np.sign(t[i] - t[j]) for i, j in pairs) / len(pairs)  # no ties: tau-a = tau-b
    got = rank_agreement(scores, truth, top=0.25)
    assert got["n"] == 38 and got["kendall_tau"] == pytest.approx(brute, abs=1e-12)
    rs, rt = np.argsort(np.argsort(s)), np.argsort(np.argsort(t))
    assert got["spearman"] == pytest.approx(np.corrcoef(rs, rt)[0, 1], abs=1e-12)
    k = int(38 * 0.25)
    assert got["top_overlap"] == len(set(np.argsort(-s)[:k]) & set(np.argsort(-t)[:k])) / k
    assert rank_agreement(t, t)["kendall_tau"] == pytest.approx(1.0) and rank_agreement(t, t)["top_overlap"] == 1.0
    with pytest.raises(ValueError, match="at least 2 items with a finite truth value; got 1"):
        rank_agreement(np.ones(3), np.array([1.0, np.nan, np.nan]))
