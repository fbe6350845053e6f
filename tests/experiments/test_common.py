import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_CACHE = """
import jax
from experiments.common import use_compilation_cache
print(use_compilation_cache(), jax.config.jax_compilation_cache_dir)
"""


def test_compilation_cache_folder_from_the_environment(tmp_path):
    # A fresh process each time: the cache folder is process-wide JAX configuration.
    def run(value):
        env = {k: v for k, v in os.environ.items() if k != "JNAS_COMPILATION_CACHE"}
        if value is not None:
            env["JNAS_COMPILATION_CACHE"] = value
        env["HOME"] = str(tmp_path / "home")
        out = subprocess.run([sys.executable, "-c", _CACHE], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.split()

    assert run(str(tmp_path / "xla")) == [str(tmp_path / "xla")] * 2
    assert run("") == ["None", "None"]
    assert run(None) == [str(tmp_path / "home" / ".cache" / "jnas" / "xla")] * 2
