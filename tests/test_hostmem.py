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
faults = []
for _ in range(20):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    jax.block_until_ready(compiled(x))
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
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
    pages = kept["pages"]
    assert pages > 16_000  # a temporary buffer large enough for glibc to mmap it by default

    def faulting_calls(faults):  # calls that touched fresh pages for (most of) the buffer
        return sum(f > 0.5 * pages for f in faults)

    # glibc's default: every call maps the buffer afresh, one minor fault per 4 KiB page.
    assert faulting_calls(default["faults"]) == 20, default
    # Kept: the single heap still grows during the first calls, because other threads' small
    # allocations split the freed block and the next buffer no longer fits in it (measured: 1-8
    # of the first 10 calls fault on two cores, none on one); once the heap holds room for both,
    # calls reuse it (0-2 of the next 10 fault in our runs).
    assert faulting_calls(kept["faults"][10:]) <= 4, kept


@pytest.mark.parametrize("value", ["0", "false", "No", "off "])
def test_every_usual_spelling_of_off_leaves_malloc_alone(monkeypatch, value):
    from mlpot import hostmem

    monkeypatch.setenv("MLPOT_KEEP_FREED_MEMORY", value)
    monkeypatch.setattr(hostmem, "_glibc", lambda: pytest.fail("malloc was configured although switched off"))
    assert hostmem.keep_freed_memory() is False
