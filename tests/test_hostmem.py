"""XLA:CPU's per-call temporary buffer is reused, not page-faulted in again on every call.

Run in fresh processes that import mlpot first, as the ``mlpot`` command does
(the malloc settings must precede the threads of numpy's BLAS and of XLA).
"""

import json
import os
import subprocess
import sys

import pytest

import mlpot

PROBE = """
import mlpot, resource, json, jax, jax.numpy as jnp

@jax.jit
def work(x):  # ~100 MiB of materialised temporaries (a running sum needs the whole product)
    outer = jnp.sin(x[:, None] * x[None, :])
    return jnp.cumsum(outer, axis=0)[-1].sum() + jnp.cumsum(outer[::-1], axis=1)[:, -1].sum()

x = jnp.linspace(0.0, 1.0, 3000, dtype=jnp.float32)
compiled = work.lower(x).compile()
jax.block_until_ready(compiled(x))
jax.block_until_ready(compiled(x))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    jax.block_until_ready(compiled(x))
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"pages": compiled.memory_analysis().temp_size_in_bytes / 4096, "faults": faults}))
"""


def probe(keep: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "GLIBC_TUNABLES")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env | {"MLPOT_KEEP_FREED_MEMORY": keep},
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.skipif(not mlpot.HOST_MEMORY_KEPT, reason="glibc malloc settings not applied (not glibc?)")
def test_repeated_calls_reuse_their_temporary_buffer_instead_of_faulting_it_in_again():
    kept, default = probe("1"), probe("0")
    assert kept["pages"] > 16_000  # a temporary buffer large enough for glibc to mmap it by default
    # glibc's default: every call maps the buffer afresh, one minor fault per 4 KiB page.
    assert default["faults"] > 3 * kept["pages"], default
    assert kept["faults"] < 0.1 * kept["pages"], kept
