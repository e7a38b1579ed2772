"""Keep freed host memory for reuse, so XLA:CPU stops page-faulting its working set on every call.

XLA:CPU allocates one temporary buffer per execution of a compiled program
(hundreds of MiB for a few thousand atoms: every per-edge activation the
backward pass needs) and frees it when the call returns. With glibc's default
settings a block that large is served by ``mmap`` (XLA's threads use their own
malloc arenas, which fall back to ``mmap`` for anything over 64 MiB) and given
back with ``munmap``, so the next call touches fresh pages: one minor page
fault per 4 KiB, zero-filled by the kernel. Measured on a 4,000-atom copper
force call (PaiNN 16x2, one core): 86,767 faults per call, 0.27 s of system
time beside 0.28 s of user time, so the call took twice as long as its compute.

``keep_freed_memory`` tells glibc to serve every thread from the main heap
(``M_ARENA_MAX`` 1), never to use ``mmap`` for large blocks (``M_MMAP_MAX`` 0)
and never to trim the heap (``M_TRIM_THRESHOLD`` = SIZE_MAX): freed blocks
stay in the process and the same buffer is reused without faults (after a few
warm-up calls while the heap grows: other threads' small allocations can split a
freed block, so the next buffer needs new room until the heap has enough). The cost is
that the resident size stays at its peak until the process ends, which is
what an MD or training process wants anyway.

``import mlpot`` calls it; set ``MLPOT_KEEP_FREED_MEMORY=0`` (or false, no, off) to leave malloc
alone. A thread picks its malloc arena at its first allocation, so this works
fully when mlpot is imported before numpy and JAX start threads (the ``mlpot``
command does; in a script, ``import mlpot`` first, or run with
``OPENBLAS_NUM_THREADS=1``). Otherwise, or to be sure, set it for the whole
process: ``GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967295``.
No effect, and no error, off glibc (macOS, musl) or on accelerators' device
memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# glibc <malloc.h> parameter numbers for mallopt().
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
OFF = ("0", "false", "no", "off")  # any of these spellings, not just "0", turns it off


def _glibc():
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # only glibc has it  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Apply the settings above; True when glibc accepted all three."""
    if os.environ.get("MLPOT_KEEP_FREED_MEMORY", "1").strip().lower() in OFF:
        return False
    libc = _glibc()
    if libc is None:
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # -1 becomes SIZE_MAX inside glibc (the value is converted to size_t): never trim, even
    # for temporary buffers over 2 GiB (a 32,000-atom force call needs 2.7 GiB).
    results = [libc.mallopt(M_ARENA_MAX, 1), libc.mallopt(M_MMAP_MAX, 0), libc.mallopt(M_TRIM_THRESHOLD, -1)]
    return all(r == 1 for r in results)
