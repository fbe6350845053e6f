"""jnas.distributed: blocks that partition a population, and clear refusals."""

import pytest

from jnas import distributed


@pytest.mark.parametrize("n,p", [(0, 1), (7, 1), (7, 2), (8, 3), (2, 4), (15625, 4)])
def test_blocks_partition_the_population_in_order(n, p):
    blocks = [distributed.share(n, p, i) for i in range(p)]
    covered = [i for b in blocks for i in range(b.start, b.stop)]
    assert covered == list(range(n))
    sizes = [b.stop - b.start for b in blocks]
    assert max(sizes) == -(-n // p) if n else max(sizes) == 0


def test_partial_or_impossible_process_settings_are_refused():
    with pytest.raises(ValueError, match="give coordinator, num_processes and process_id together"):
        distributed.initialize("localhost:1234")
    with pytest.raises(ValueError, match=r"process_id must lie in 0..1; got 2 of 2"):
        distributed.initialize("localhost:1234", 2, 2)


_WORKER = """
import json, sys
import numpy as np
from jnas import distributed
distributed.initialize(sys.argv[1], 2, int(sys.argv[2]))
seen = []
def square(block):
    seen.extend(block.tolist())
    return np.stack([block ** 2, -block], axis=1)
out = distributed.map_population(square, np.arange(7.0))
print(json.dumps({"seen": seen, "out": out.tolist()}))
"""


def test_two_processes_split_a_population_and_gather_it_in_order():
    import json
    import socket
    import subprocess
    import sys

    import numpy as np

    from tests.conftest import REPO

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, f"localhost:{port}", str(i)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["seen"] for r in results] == [[0, 1, 2, 3], [4, 5, 6]]  # each process evaluated only its block
    want = np.stack([np.arange(7.0) ** 2, -np.arange(7.0)], axis=1)
    for r in results:  # every process holds the whole population's results, in order
        np.testing.assert_array_equal(np.asarray(r["out"]), want)
