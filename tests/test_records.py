"""The one results writer: resume by key, torn last records, strict JSON, and the output
folder's lock and takeover rules (checkpoints: tests/test_checkpoints.py)."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments.common import prepare_out
from jnas.records import Records, read_json, write_json


def test_records_resume_by_key_and_keep_the_last_record_of_a_key(tmp_path):
    r = Records(tmp_path / "log.jsonl", key=lambda rec: rec["unit"])
    for u, v in ((0, 1.0), (1, 2.0), (0, 3.0)):
        r.append({"unit": u, "value": v})
    assert Records(tmp_path / "log.jsonl").read() == [{"unit": 0, "value": 1.0}, {"unit": 1, "value": 2.0},
                                                      {"unit": 0, "value": 3.0}]
    assert r.done() == {0: {"unit": 0, "value": 3.0}, 1: {"unit": 1, "value": 2.0}}
    with pytest.raises(ValueError, match="no key function"):
        Records(tmp_path / "log.jsonl").done()


@pytest.mark.parametrize("tail", [b'{"unit": 2, "val', b'{"unit": 2}', b"\xff\xfe"])
def test_a_torn_last_record_is_reported_dropped_and_cut(tmp_path, tail):
    path = tmp_path / "log.jsonl"
    r = Records(path)
    r.append({"unit": 0})
    r.append({"unit": 1})
    good = path.read_bytes()
    with open(path, "ab") as f:
        f.write(tail)  # the write a kill cut short: no newline after it
    with pytest.warns(UserWarning, match=r"log\.jsonl, line 3: dropped a damaged last record"):
        assert r.read() == [{"unit": 0}, {"unit": 1}]
    assert path.read_bytes() == good  # cut, so the next append starts a clean line
    r.append({"unit": 2})
    assert [x["unit"] for x in r.read()] == [0, 1, 2]


def test_damage_before_the_last_record_is_refused_by_file_and_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"unit": 0}\n{"unit": 1, "va\n{"unit": 2}\n')
    with pytest.raises(ValueError, match=r"log\.jsonl, line 2, is not a JSON record"):
        Records(path).read()


def test_json_is_strict_and_atomic(tmp_path):
    write_json(tmp_path / "s.json", {"a": float("nan"), "b": [1.0, float("inf")], "c": 2})
    text = (tmp_path / "s.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [1.0, None], "c": 2}
    assert not (tmp_path / "s.json.tmp").exists()
    (tmp_path / "bad.json").write_text('{"a": 1')
    with pytest.raises(ValueError, match=r"bad\.json is not valid JSON"):
        read_json(tmp_path / "bad.json")


@dataclasses.dataclass(frozen=True)
class _Cfg:
    n: int = 1
    out: str = ""


def test_a_failed_run_does_not_block_its_corrected_rerun(tmp_path):
    out = tmp_path / "run"
    prepare_out(out, _Cfg(n=-1), resume_keys=["n"])  # failed before writing any result
    prepare_out(out, _Cfg(n=3), resume_keys=["n"])  # the corrected rerun takes the folder over
    assert read_json(out / "config.json")["n"] == 3
    Records(out / "results.jsonl").append({"unit": 0})  # finished work: now settings must match
    with pytest.raises(ValueError, match="other settings"):
        prepare_out(out, _Cfg(n=4), resume_keys=["n"])
    prepare_out(out, _Cfg(n=3), resume_keys=["n"])  # the same settings resume


def test_a_second_process_on_the_same_out_is_refused(tmp_path):
    out = tmp_path / "run"
    prepare_out(out, _Cfg(), resume_keys=[])  # this process holds the folder
    code = ("import dataclasses, sys; from experiments.common import prepare_out\n"
            "@dataclasses.dataclass(frozen=True)\nclass C:\n    n: int = 1\n"
            "try:\n    prepare_out(sys.argv[1], C(), [])\n    print('ok')\nexcept ValueError as e:\n    print(e)\n")
    root = Path(__file__).resolve().parents[1]
    run = lambda folder: subprocess.run([sys.executable, "-c", code, str(folder)], cwd=root, capture_output=True,
                                        text=True, timeout=120).stdout
    assert "another process is writing to" in run(out)
    assert run(tmp_path / "other").strip() == "ok"


def test_an_append_after_a_torn_line_cuts_it_first(tmp_path):
    # A resumed writer that appends without reading (the one-shot driver's epoch log) must not
    # glue its record onto the torn half line a kill left.
    path = tmp_path / "log.jsonl"
    Records(path).append({"epoch": 1})
    with open(path, "a") as f:
        f.write('{"epoch": 2, "alpha": [0.1, ')
    with pytest.warns(UserWarning, match=r"log\.jsonl, line 2: dropped a damaged last record"):
        Records(path).append({"epoch": 2, "alpha": [0.1]})
    assert Records(path).read() == [{"epoch": 1}, {"epoch": 2, "alpha": [0.1]}]
