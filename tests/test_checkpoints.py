"""jnas.checkpoints (orbax): round trip of optimiser state, the previous step kept, damaged
steps refused by name with a fall back, another model's checkpoint refused, and a checkpoint
written on two devices restored on one (and the reverse)."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jnas import checkpoints
from tests.conftest import REPO


def _state(scale: float):
    params = {"conv": {"kernel": jnp.arange(12.0).reshape(4, 3) * scale}, "bias": jnp.full(3, scale)}
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    opt = tx.init(params)
    return {"params": params, "opt": opt, "step": jnp.int32(scale), "host": np.arange(3.0) * scale}


def _target():
    return jax.tree.map(lambda x: x * 0, _state(1.0))


def _equal(a, b) -> bool:
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _steps(path):
    return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit())


def test_round_trip_keeps_types_and_the_previous_step(tmp_path):
    path = tmp_path / "state.ckpt"
    assert checkpoints.restore(path, _target()) is None
    for scale in (1.0, 2.0, 3.0):
        checkpoints.save(path, _state(scale), epoch=int(scale))
    assert _steps(path) == [2, 3]  # the newest and the one before it
    state, meta = checkpoints.restore(path, _target())
    assert meta == {"epoch": 3}
    assert _equal(state, _state(3.0))
    assert type(state["opt"][1][0]) is type(_state(1.0)["opt"][1][0])  # optax's named tuples come back
    assert isinstance(state["host"], np.ndarray) and isinstance(state["step"], jax.Array)


def _damage(step_dir):
    """Overwrite 8 bytes in the middle of every array data file of one step."""
    for f in (step_dir / "state").rglob("*"):
        if f.is_file() and f.parent.name == "d" and f.stat().st_size >= 16:
            blob = bytearray(f.read_bytes())
            blob[len(blob) // 2: len(blob) // 2 + 8] = b"\xab" * 8
            f.write_bytes(bytes(blob))


def test_a_damaged_step_falls_back_to_the_previous_one_and_none_good_is_refused(tmp_path):
    path = tmp_path / "state.ckpt"
    checkpoints.save(path, _state(1.0), epoch=1)
    checkpoints.save(path, _state(2.0), epoch=2)
    _damage(path / "2")
    with pytest.warns(UserWarning, match=r"state\.ckpt \(step 2\) is damaged.*previous checkpoint, step 1"):
        state, meta = checkpoints.restore(path, _target())
    assert meta == {"epoch": 1} and _equal(state, _state(1.0))
    _damage(path / "1")
    with pytest.raises(ValueError, match=r"no usable checkpoint: checkpoint .*state\.ckpt \(step 2\) is damaged.*Delete"):
        checkpoints.restore(path, _target())


def test_values_that_do_not_match_their_digest_are_refused(tmp_path):
    """Orbax restores overwritten data bytes as wrong numbers without an error; the SHA-256
    stored beside the arrays is what catches it. Here the arrays stay readable and the
    recorded digest is changed instead."""
    path = tmp_path / "state.ckpt"
    checkpoints.save(path, _state(1.0), epoch=1)
    info = path / "1" / "info" / "metadata"
    record = json.loads(info.read_text())
    record["sha256"] = "0" * 64
    info.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"step 1\) is damaged: its values do not match their SHA-256"):
        checkpoints.restore(path, _target())
    info.write_text("{}")  # parseable, but not what jnas writes
    with pytest.raises(ValueError, match=r"step 1\) is damaged: its JSON item lacks the meta, layout and digest"):
        checkpoints.restore(path, _target())


def test_another_models_checkpoint_and_a_file_are_refused_by_name(tmp_path):
    path = tmp_path / "state.ckpt"
    checkpoints.save(path, _state(1.0), epoch=1)
    wider = _target()
    wider["params"]["bias"] = jnp.zeros(5)
    with pytest.raises(ValueError, match=r"different state.*\['params'\]\['bias'\] saved \(3,\) float32, expected \(5,\) float32"):
        checkpoints.restore(path, wider)
    extra = {**_target(), "ema": jnp.zeros(2)}
    with pytest.raises(ValueError, match=r"missing from the checkpoint: \['ema'\]"):
        checkpoints.restore(path, extra)
    (tmp_path / "old.msgpack").write_bytes(b"JNASCKPT1\n")
    with pytest.raises(ValueError, match=r"old\.msgpack is a file, not an orbax checkpoint folder"):
        checkpoints.restore(tmp_path / "old.msgpack", _target())


# Runs with two CPU devices: restores the one-device checkpoint onto arrays split over both
# devices, then writes the two-device state for the parent to restore on one device.
_TWO_DEVICES = """
import os, sys
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import jax, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from jnas import checkpoints
from tests.test_checkpoints import _equal, _state, _target
assert jax.device_count() == 2
split = NamedSharding(jax.make_mesh((2,), ("d",)), P("d"))
def shard(tree):
    return jax.tree.map(lambda x: jax.device_put(x, split) if isinstance(x, jax.Array) and x.ndim and x.shape[0] % 2 == 0 else x, tree)
state, meta = checkpoints.restore(sys.argv[1], shard(_target()))
kernel = state["params"]["conv"]["kernel"]
assert _equal(state, _state(1.0)) and meta == {"epoch": 1}, meta
assert len(kernel.sharding.device_set) == 2, kernel.sharding
checkpoints.save(sys.argv[2], shard(_state(5.0)), epoch=5)
print("ok")
"""


def test_a_checkpoint_written_on_two_devices_restores_on_one(tmp_path):
    one, two = tmp_path / "one.ckpt", tmp_path / "two.ckpt"
    checkpoints.save(one, _state(1.0), epoch=1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("XLA_FLAGS", None)
    run = subprocess.run([sys.executable, "-c", _TWO_DEVICES, str(one), str(two)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]
    target = jax.device_put(_target(), jax.devices()[0])
    target["host"] = np.zeros(3)
    state, meta = checkpoints.restore(two, target)
    assert meta == {"epoch": 5} and _equal(state, _state(5.0))
    kernel = state["params"]["conv"]["kernel"]
    assert kernel.sharding.device_set == {jax.devices()[0]}
