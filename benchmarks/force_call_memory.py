"""Peak host memory and time of one energy + forces call of a MACE (or any model file), in a fresh process.

    taskset -c 1 .venv/bin/python benchmarks/force_call_memory.py --model mace128 --water 1536

``--model``: ``mace32`` (the benchmark recipes' MACE: 32 channels, l <= 2), ``mace128`` (the wide
ethanol MACE's sizes: 128 channels, l <= 3) or a ``.mlpot`` file that knows H and O; random weights
for the named sizes (memory and time do not depend on them). The structure is the liquid-water box
of benchmarks/structures.py (192, 1536 or 12288 atoms). Peak RSS is the process's high-water mark
(``ru_maxrss``), so run one case per process. Prints figures; asserts nothing. Graphs above
``mlpot.models.edge_chunks.CHUNKED_ABOVE`` message numbers take the chunked neighbour sum (the
12,288-atom box with every model here; the 1,536-atom one with ``mace128``).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import mlpot  # first: host memory settings, x64

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax
import structures  # benchmarks/structures.py: the shared test systems

from mlpot import ModelConfig, Potential

SIZES = {"mace32": {"features": 32, "l_max": 2}, "mace128": {"features": 128, "l_max": 3}}


def potential(model: str) -> Potential:
    if model not in SIZES:
        return mlpot.load(model)
    hyperparameters = {**SIZES[model], "hidden_l": 1, "correlation": 3, "num_interactions": 2, "num_basis": 8}
    config = ModelConfig(name="mace", cutoff=5.0, species=(1, 8), hyperparameters=hyperparameters)
    return Potential.create(config, seed=0)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mace32", help="mace32, mace128 or a .mlpot file")
    parser.add_argument("--water", type=int, default=1536, help="atoms in the water box: 192, 1536 or 12288")
    args = parser.parse_args(argv)
    pot, atoms = potential(args.model), structures.water(args.water)
    before = peak_mib()
    start = time.perf_counter()
    jax.block_until_ready(pot.predict([atoms]).forces)
    first = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(pot.predict([atoms]).forces)
    again = time.perf_counter() - start
    print(
        f"{args.model}, water {len(atoms)} atoms: peak RSS {peak_mib():.0f} MiB ({before:.0f} before the first call); "
        f"first call {first:.1f} s (compiling), second {again:.2f} s"
    )


if __name__ == "__main__":
    main()
