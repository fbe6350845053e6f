"""Segmentation losses and metrics against closed forms, AZ-NAS rank aggregation against brute
force, the latency table's bookkeeping, and the nuclei split."""

from __future__ import annotations


import jax
import numpy as np
import pytest

from jnas.seg import latency, losses
from jnas.seg.data import load_nuclei
from jnas.seg.proxies import aggregate
from jnas.spaces.hybrid import SPACE, TINY


def test_dice_iou_and_soft_dice_against_closed_forms():
    rng = np.random.default_rng(0)
    pred, y = rng.random((3, 5, 5)) > 0.5, rng.random((3, 5, 5)) > 0.6
    pred[2], y[2] = False, False  # nothing to find, nothing found: 1
    dice, iou = losses.dice_iou(pred, y)
    for i in range(2):
        a, b = set(zip(*np.nonzero(pred[i]))), set(zip(*np.nonzero(y[i])))
        assert dice[i] == pytest.approx(2 * len(a & b) / (len(a) + len(b)))
        assert iou[i] == pytest.approx(len(a & b) / len(a | b))
    assert dice[2] == iou[2] == 1.0
    logits = rng.normal(size=(3, 5, 5, 1)).astype(np.float32)
    p = 1 / (1 + np.exp(-logits[..., 0]))
    yy = y.astype(np.float32)
    want = np.mean(1 - (2 * (p * yy).sum((1, 2)) + 1) / (p.sum((1, 2)) + yy.sum((1, 2)) + 1))
    assert float(losses.dice_loss(logits, yy)) == pytest.approx(want, rel=1e-5)
    want_bce = -np.mean(yy * np.log(p) + (1 - yy) * np.log(1 - p))
    assert float(losses.bce(logits, yy)) == pytest.approx(want_bce, rel=1e-5)
    assert float(losses.entropy(logits)) == pytest.approx(-np.mean(p * np.log(p) + (1 - p) * np.log(1 - p)), rel=1e-5)
    assert losses.complexity(50.0, 100.0) == 0.0 and losses.complexity(200.0, 100.0) == pytest.approx(np.log(2))


def test_rank_aggregation_by_brute_force():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(40, 3))
    s = np.vstack([rng.normal(size=(5, 3)), [[np.nan, 0.0, 0.0]]])
    got = aggregate(s, ref)
    for i, row in enumerate(s):
        want = sum(np.log(max(np.sum(ref[:, p] <= row[p]) / 40, 1 / 40)) if np.isfinite(row[p]) else np.log(1 / 40)
                   for p in range(3))
        assert got[i] == pytest.approx(want)
    # the best candidate on every proxy gets 0, the worst the minimum
    assert aggregate(ref.max(0)[None], ref)[0] == 0.0
    assert aggregate(ref.min(0)[None] - 1, ref)[0] == pytest.approx(3 * np.log(1 / 40))


@pytest.mark.parametrize("space", [TINY, SPACE], ids=["tiny", "default"])
def test_latency_table_covers_every_candidate_and_sums_its_parts(space):
    parts = latency.all_parts(space)
    archs = np.asarray(space.sample(jax.random.key(0), 300))
    for a in archs:
        for key, count in latency.part_keys(space, a):
            assert key in parts, key
    table = {k: float(i + 1) for i, k in enumerate(parts)}  # distinct values: a wrong key changes the sum
    a = archs[0]
    c = space.decode(a)
    want = table[f"stem r{c.resolution}"] + table[f"head r{c.resolution}"]
    want += sum(st.depth * table[latency._block_key(c.resolution, s, st.block, st.width, st.heads, st.mlp, st.kernel)]
                for s, st in enumerate(c.stages))
    widths = [space.stem_width] + [st.width for st in c.stages]
    want += sum(table[f"down r{c.resolution} s{s} {widths[s]}->{widths[s + 1]}"] for s in range(space.stages))
    want += sum(table[f"dec r{c.resolution} l{i} {widths[i + 1]}->{widths[i]}"] for i in range(space.stages))
    assert latency.predict(space, table, a)[0] == pytest.approx(want)
    # unused genes (heads of a conv block) do not change the latency
    same = [a for a in archs if space.decode(a).stages[-1].block == "conv"][0].copy()
    other = same.copy()
    other[space.gene(space.stages - 1, "heads")] = (other[space.gene(space.stages - 1, "heads")] + 1) % len(space.heads)
    assert latency.predict(space, table, same)[0] == latency.predict(space, table, other)[0]
    with pytest.raises(ValueError, match="latency table has no entry"):
        latency.predict(space, {}, a)


def test_nuclei_split_is_disjoint_seeded_and_standardised(data_dir):
    tr, te = load_nuclei(data_dir, 32, split_seed=0)
    assert (len(tr.x), len(te.x)) == (564, 100) and not set(tr.index) & set(te.index)
    assert tr.x.shape[1:] == (32, 32, 3) and set(np.unique(tr.y)) <= {0.0, 1.0}
    np.testing.assert_allclose(tr.x.mean((0, 1, 2)), 0, atol=1e-3)  # float32 sums
    np.testing.assert_allclose(tr.x.std((0, 1, 2)), 1, atol=1e-3)
    np.testing.assert_array_equal(np.sort(np.random.default_rng(0).permutation(664)[-100:]), te.index)
    assert set(np.random.default_rng(1).permutation(664)[-100:]) != set(te.index)  # another split seed, another split
    # 0.143 is the mean foreground fraction at 128x128 (nuclei_dsb2018/PROVENANCE.md); pooling
    # to 32 and thresholding at 0.5 keeps it within a point
    assert abs(np.concatenate([tr.y, te.y]).mean() - 0.143) < 0.01


def test_missing_nuclei_file_names_file_and_source(tmp_path, monkeypatch):
    monkeypatch.delenv("JNAS_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match=r"nuclei_dsb2018/dsb2018_nuclei_128.npz(.|\n)*BBBC038"):
        load_nuclei(tmp_path)
