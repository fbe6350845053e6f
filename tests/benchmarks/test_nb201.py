import csv
import gzip

import jax
import numpy as np
import pytest

from jnas.benchmarks import nb201
from jnas.spaces import nb201 as sp

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_reads_every_numeric_column(table, data_dir):
    with gzip.open(data_dir / nb201.DEFAULT_FILE, "rt") as f:
        header = next(csv.reader(f))
    expected = [h for h in header if h not in ("arch_str", "arch_index") and not h.startswith("op_")]
    assert table.metrics == expected
    assert set(table.accuracy_columns()) == {h for h in expected if "_acc_" in h}


def test_published_optimum_and_row_order(table, data_dir):
    # NB201 paper: best CIFAR-10 test accuracy 94.37 at official index 6111.
    assert float(table.query(BEST, "c10_test_acc_200ep")) == pytest.approx(94.37, abs=0.01)
    acc = np.asarray(table.column("c10_test_acc_200ep"))
    best = int(sp.to_index(sp.from_string(BEST)))
    assert acc[best] == np.nanmax(acc)  # ties: isomorphic cells share the value
    assert int(table.official_index[best]) == 6111
    # Every row lands at its own base-5 index: compare against the raw file.
    rows = list(csv.DictReader(gzip.open(data_dir / nb201.DEFAULT_FILE, "rt")))
    for r in rows[::131]:
        a = sp.from_string(r["arch_str"])
        assert float(table.query(a, "c10valid_val_acc_12ep")) == pytest.approx(float(r["c10valid_val_acc_12ep"]), abs=1e-4)
        assert int(table.official_index[sp.to_index(a)]) == int(r["arch_index"])


def test_query_forms_agree_and_work_under_jit(table, key):
    archs = sp.sample(key, 8)
    strings = [sp.to_string(a) for a in archs]
    col = "c10_test_acc_200ep"
    batch = np.asarray(table.query(archs, col))
    np.testing.assert_array_equal(np.asarray(table.query(strings, col)), batch)
    np.testing.assert_array_equal([float(table.query(s, col)) for s in strings], batch)
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda t, a: t.query(a, col))(table, archs)), batch)
    with pytest.raises(ValueError, match="unknown benchmark column 'c10_bogus'"):
        table.query(archs, "c10_bogus")


def test_missing_values_marked(table):
    lat = np.asarray(table.column("hw_c10_edgetpu_latency"))
    assert np.isnan(lat).any() and np.nanmin(lat) >= 0


def test_missing_file_error_names_places(tmp_path, monkeypatch):
    monkeypatch.setenv("JNAS_DATA", str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError) as err:
        nb201.load(tmp_path / "arg")
    msg = str(err.value)
    assert str(tmp_path / "arg" / nb201.DEFAULT_FILE) in msg
    assert str(tmp_path / "env" / nb201.DEFAULT_FILE) in msg
    assert "JNAS_DATA" in msg and "NATS-Bench" in msg


def _write_table(path, header, rows):
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_extra_datasets_are_read_and_bad_files_rejected(tmp_path, data_dir):
    with gzip.open(data_dir / nb201.DEFAULT_FILE, "rt") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    a = header.index("arch_str")
    # A table with CIFAR-100 and ImageNet16 columns: read without any code change.
    extra = [r + [str(i % 97), str(i % 89)] for i, r in enumerate(rows)]
    _write_table(tmp_path / "t.csv.gz", header + ["c100_test_acc_200ep", "in16_test_acc_200ep"], extra)
    t = nb201.read_table(tmp_path / "t.csv.gz")
    assert {"c100", "in16"} <= set(t.datasets)
    i = 1234
    assert float(t.query(rows[i][a], "c100_test_acc_200ep")) == i % 97
    # Malformed: a bad op name, a missing row, a duplicate.
    bad = [list(r) for r in rows]
    bad[5][a] = bad[5][a].replace("~0|", "~0|", 1).replace("skip_connect", "skip_conect", 1).replace("nor_conv_1x1", "nor_conv_1x2", 1).replace("avg_pool_3x3", "avg_pool_9x9", 1)
    _write_table(tmp_path / "bad.csv.gz", header, bad)
    with pytest.raises(ValueError, match=r"bad.csv.gz, line 7: .*unknown op"):
        nb201.read_table(tmp_path / "bad.csv.gz")
    _write_table(tmp_path / "short.csv.gz", header, rows[:-1])
    with pytest.raises(ValueError, match="15624 rows, expected 15625"):
        nb201.read_table(tmp_path / "short.csv.gz")
    _write_table(tmp_path / "dup.csv.gz", header, rows[:-1] + [rows[0]])
    with pytest.raises(ValueError, match="appears twice"):
        nb201.read_table(tmp_path / "dup.csv.gz")
    (tmp_path / "junk.csv.gz").write_bytes(b"\x1f\x8bnot gzip")
    with pytest.raises(ValueError, match="cannot read"):
        nb201.read_table(tmp_path / "junk.csv.gz")
