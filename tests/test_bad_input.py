"""Bad input is refused by name before any jit: architectures out of range, wrong images,
non-finite fitness, tables with holes, empty or negative sizes on experiment command lines."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import search_nb201
from jnas import proxies
from jnas import strategies as S
from jnas.spaces import nb201


@pytest.mark.parametrize("arch,match", [
    ([7, 0, 0, 0, 0, 0], r"op index 7 at position \(0,\) is outside 0\.\.4"),
    ([-1, 0, 0, 0, 0, 0], r"op index -1 at position \(0,\)"),
    (np.array([3.7, 0, 0, 0, 0, 0]), "integer op indices, got dtype float64"),
    ([0, 0, 0], "last axis of 6"),
])
def test_nb201_index_refuses_what_it_cannot_encode(arch, match):
    with pytest.raises(ValueError, match=match):
        nb201.to_index(arch)


def test_nb201_from_index_refuses_out_of_range_and_jit_still_works():
    for bad in (15625, -1):
        with pytest.raises(ValueError, match=f"index {bad} is outside 0..15624"):
            nb201.from_index(bad)
    with pytest.raises(ValueError, match="integers"):
        nb201.from_index(3.0)
    a = nb201.sample(jax.random.key(0), 4)
    np.testing.assert_array_equal(jax.jit(lambda a: nb201.from_index(nb201.to_index(a)))(a), a)  # traced: unchecked


def test_table_query_refuses_another_cell(table):
    with pytest.raises(ValueError, match="op index 7"):
        table.query(np.array([7, 0, 0, 0, 0, 0]), "c10_test_acc_200ep")


@pytest.mark.parametrize("images,match", [
    (np.zeros((4, 3, 8, 8), np.float32), r"3 channels last.*channels first\?"),
    (np.zeros((4, 8, 8, 1), np.float32), r"3 channels last.*got \(4, 8, 8, 1\)"),
    (np.zeros((4, 8, 8, 3), np.uint8), "must be floats, normalised"),
    (np.full((4, 8, 8, 3), np.nan, np.float32), "16|non-finite"),
    (np.full((4, 8, 8, 3), 200.0, np.float32), r"reach 200\.0.*raw 0\.\.255"),
])
def test_proxy_images_are_checked_before_scoring(images, match):
    y = np.arange(4) % 3
    archs = nb201.sample(jax.random.key(0), 2)
    with pytest.raises(ValueError, match=match):
        proxies.score("naswot", archs, (images, y), jax.random.key(0), progress=False)


def _toy(archs):
    f = np.asarray(jnp.sum(archs == 3, -1), np.float32)
    return f, f


def test_driver_refuses_nonfinite_fitness_or_tells_the_worst_seen(tmp_path):
    s = S.get("rea")
    calls = []

    def sometimes_nan(archs):
        calls.append(1)
        f, r = _toy(archs)
        return (np.where(len(calls) % 3 == 0, np.nan, f), r)

    with pytest.raises(ValueError, match=r"non-finite fitness \[nan\] at step 2"):
        S.run(s, None, sometimes_nan, 20, jax.random.key(0), progress=False)
    calls.clear()
    log = tmp_path / "log.jsonl"
    trace = S.run(s, None, sometimes_nan, 30, jax.random.key(0), log=log, progress=False, nonfinite="worst")
    assert np.isnan(trace.fitness).sum() == 10  # the trace and the log keep what the objective said
    # A rerun replays the logged NaNs (strict JSON null) through the same mapping: same search, no calls.
    calls.clear()
    again = S.run(s, None, sometimes_nan, 30, jax.random.key(0), log=log, progress=False, nonfinite="worst")
    assert not calls and np.array_equal(again.archs, trace.archs)
    assert "NaN" not in log.read_text()


def test_jitted_searches_refuse_nonfinite_fitness_or_tell_the_worst_seen_as_the_driver_does():
    def holes(archs):  # NaN when edge 0 is avg_pool, +inf when edge 1 is: both must stay out of the incumbent
        f = r = jnp.sum(archs == 3, -1).astype(jnp.float32)
        f = jnp.where(archs[..., 0] == 4, jnp.nan, jnp.where(archs[..., 1] == 4, jnp.inf, f))
        return f, r

    s = S.get("rea", population=6, sample_size=3, max_population=6, max_sample_size=3)
    with pytest.raises(ValueError, match="the objective does not trace under jit.*mode='driver'"):
        S.run_seeds(s, _toy, 40, 2)  # a numpy objective, not a bare tracer error
    with pytest.raises(ValueError, match=r"non-finite fitness (nan|inf) .* at seed 5, step \d+ for \["):
        S.run_seeds(s, holes, 40, 2, first_seed=5)
    jitted = S.run_seeds(s, holes, 40, 2, first_seed=5, nonfinite="worst")
    driven = S.run_seeds(s, holes, 40, 2, first_seed=5, mode="driver", nonfinite="worst")
    np.testing.assert_array_equal(jitted[0], driven[0])  # the same search: the same values told
    assert np.isfinite(jitted[0][:, -1]).all() and (jitted[0][:, -1] <= 6).all()


def test_reinforce_keeps_learning_when_some_evaluations_are_nan():
    s = S.get("reinforce", lr=0.05)
    calls = []

    def half_nan(archs):
        calls.append(1)
        f, r = _toy(archs)
        return (np.where(len(calls) % 2 == 0, np.nan, f), r)

    trace = S.run(s, None, half_nan, 60, jax.random.key(1), progress=False, nonfinite="worst")
    baseline = trace.metrics["baseline"]
    assert np.isfinite(baseline).all()  # one NaN would have frozen it for good
    assert len(np.unique(np.asarray(trace.archs)[-20:].reshape(20, -1), axis=0)) > 1


def test_tabular_objective_refuses_or_fills_a_column_with_holes():
    class Table:
        columns = {"fit": jnp.array([1.0, jnp.nan, 3.0]), "rep": jnp.array([1.0, 2.0, 3.0])}
        metrics = ["fit", "rep"]

    with pytest.raises(ValueError, match="'fit' has 1 missing values.*missing='worst'"):
        S.objectives.tabular(Table, "fit", "rep")
    obj = S.objectives.tabular(Table, "fit", "rep", missing="worst")
    f, _ = obj(jnp.array([[0, 0, 0, 0, 0, 1]]))
    assert float(f[0]) == 1.0  # the hole at index 1 holds the column's worst value


def _experiment_configs():
    import dataclasses
    import importlib
    import pkgutil

    import experiments

    for m in pkgutil.iter_modules(experiments.__path__):
        module = importlib.import_module(f"experiments.{m.name}")
        if dataclasses.is_dataclass(getattr(module, "Config", None)):
            yield pytest.param(module, id=m.name)


def _just_outside(f) -> list[str]:
    """Values of field ``f`` its bounds refuse (one per bound), as command-line text."""
    from experiments import common

    if "choices" in f.metadata:
        return ["no-such-choice"]
    b, bad = common._bounds(f), []
    step = 1 if common._base_type(f) is int or f.metadata.get("items") is int else 1e-3
    bad += [str(b["min"] - step)] if "min" in b else []
    bad += [str(b["above"])] if "above" in b else []
    bad += [str(b["max"] + step)] if "max" in b else []
    bad += [str(b["below"])] if "below" in b else []
    if "items" in f.metadata:
        bad = [f"{f.default.split(',')[0]},{v}" for v in bad] + ["1,two"]
    return bad


@pytest.mark.parametrize("module", list(_experiment_configs()))
def test_every_experiment_flag_is_bounded_and_refused_by_name_before_any_output(tmp_path, module):
    """The class, not a list: every numeric flag of every experiment has bounds (floats must
    declare theirs; ints are sizes >= 1 unless they say otherwise), and a value just outside
    each bound is refused naming the flag, before the output folder exists."""
    import dataclasses

    from experiments import common

    checked = 0
    for f in dataclasses.fields(module.Config):
        kind = common._base_type(f)
        if kind is float and "items" not in f.metadata:
            assert common._bounds(f), f"{module.__name__} --{f.name} is a float without bounds"
        for value in _just_outside(f):
            flag = "--" + f.name.replace("_", "-")
            with pytest.raises(ValueError, match=f"^{flag} must "):
                module.main([flag, value, "--out", str(tmp_path / "run")])
            checked += 1
    assert not (tmp_path / "run").exists()
    assert checked >= 2  # every experiment has a seed or a size and at least one other flag


@pytest.mark.parametrize("flag,value", [("--seeds", "0"), ("--seeds", "-1"), ("--budget", "0"), ("--mode", "jit")])
def test_search_sizes_below_their_minimum_are_refused_by_flag(tmp_path, flag, value):
    with pytest.raises(ValueError, match=f"{flag} must be (>= 1|one of .*), got '?{value}"):
        search_nb201.main([flag, value, "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()  # refused before any output


def test_a_damaged_table_cell_is_named_not_dropped(tmp_path):
    from jnas.benchmarks import nb201 as bench

    header = "arch_str,acc,notes\n"
    rows = [f"{nb201.to_string(a)},{i % 7}.5,cell{i}\n" for i, a in enumerate(np.asarray(nb201.enumerate_all()))]
    rows[41] = rows[41].replace(",6.5,", ",6.5x,")
    (tmp_path / "t.csv").write_text(header + "".join(rows))
    with pytest.raises(ValueError, match=r"t\.csv, line 43, column 'acc': '6\.5x' is not a number"):
        bench.read_table(tmp_path / "t.csv")


def test_a_truncated_image_file_is_named(tmp_path, data_dir):
    from jnas.data import load_cifar10_subset

    src = data_dir / "cifar10_subset" / "cifar10_subset.npz"
    (tmp_path / "cifar10_subset").mkdir()
    (tmp_path / "cifar10_subset" / "cifar10_subset.npz").write_bytes(src.read_bytes()[: 100_000])
    with pytest.raises(ValueError, match=r"cifar10_subset\.npz is damaged and cannot be read"):
        load_cifar10_subset(tmp_path, "train")
