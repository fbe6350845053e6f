import jax

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
