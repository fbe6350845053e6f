"""The zero-shot search restricted to a variant of the hybrid space (one input resolution):
genomes convert between variants by value, and NSGA-II and regularized evolution run in the
variant while scoring through the full space. The scorer here ranks by analytic parameter
count, so no proxy is compiled."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jnas.seg import proxies
from jnas.seg.search import Scorer, run_nsga2, run_rea, searched
from jnas.spaces.hybrid import TINY


class ParamsScorer(Scorer):
    """A :class:`Scorer` whose one 'proxy' is the analytic parameter count."""

    def __init__(self, space):
        self.space, self.tables, self.cache = space, {}, {}
        self.reference = self.raw(np.asarray(space.sample(jax.random.key(9), 16)))
        self.cache = {}

    def raw(self, archs):
        archs = np.atleast_2d(self.space.check(archs))
        for a in archs:
            self.cache[self.space.to_string(a)] = proxies.analytic(self.space, a)[0, :1]
        return proxies.analytic(self.space, archs)[:, :1]


def test_resolution_variant_converts_by_value():
    sub = TINY.with_resolutions([32])
    archs = np.asarray(sub.sample(jax.random.key(0), 6))
    full = TINY.convert(archs, sub)
    assert [TINY.to_string(a) for a in full] == [sub.to_string(a) for a in archs]
    assert {TINY.decode(a).resolution for a in full} == {32} and (full[:, 0] == 1).all()
    np.testing.assert_array_equal(sub.convert(full, TINY), archs)
    r16 = TINY.from_string(TINY.to_string(full[0]).replace("r32", "r16"))
    with pytest.raises(ValueError, match="resolution 16 is not in the space"):
        sub.convert(r16, TINY)
    with pytest.raises(ValueError, match=r"one of the space's \[16, 32\]"):
        TINY.with_resolutions([24])


def test_searches_stay_in_the_variant_and_score_through_the_full_space(tmp_path):
    scorer, sub = ParamsScorer(TINY), TINY.with_resolutions([32])
    nsga, _ = run_nsga2(scorer, 6, 1, jax.random.key(1), tmp_path / "nsga2.jsonl", progress=False, space=sub)
    rea = run_rea(scorer, 1e9, 10, jax.random.key(2), tmp_path / "rea.jsonl", progress=False, space=sub)
    for trace in (nsga, rea):
        archs = searched(scorer, trace, sub)
        assert {TINY.decode(a).resolution for a in archs} == {32}
        # the logged report is the full-space score of the converted genome
        np.testing.assert_allclose(np.asarray(trace.report).reshape(len(archs), -1), proxies.analytic(TINY, archs)[:, :1])
    assert scorer.cache and all(name.startswith("r32|") for name in scorer.cache)  # nothing else was scored
