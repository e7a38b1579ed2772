"""Forward + backward (energy and forces) wall time per call: PaiNN vs MACE (and a committee).

    python examples/benchmarks/model_speed.py [--repeats 20] [--json runs/benchmarks/model_speed.json]

Systems: one 192-atom liquid-water frame (periodic, 5 Å cutoff) and batches
of 1, 8 and 32 ethanol molecules. Models are randomly initialised with the
hyperparameters of the benchmark recipes (speed does not depend on the
weights); ``mace-committee`` is two such MACEs (seeds 0 and 1) assembled as
``mlpot committee`` does: one program that runs both. Reports the median of ``--repeats`` calls after compilation, and
the compile time. Numbers depend on the machine and its load: nothing here
asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import ase.io
import jax
import numpy as np
from make_splits import ROOT, default_data, locate  # $MLPOT_DATA, the bundled ethanol, a clear error

import mlpot  # noqa: F401  (x64)
from mlpot import ModelConfig, Potential
from mlpot.modelfile import atomic_write
from mlpot.models.committee import assemble

MODELS = {
    "painn": {"features": 64, "num_interactions": 3, "num_basis": 16},
    "mace": {
        "features": 32,
        "hidden_l": 1,
        "l_max": 2,
        "correlation": 3,
        "num_interactions": 2,
        "num_basis": 8,
        "radial_hidden": 64,
        "avg_num_neighbors": 10.0,
    },
}


def systems():
    data = default_data()
    water = ase.io.read(locate(data, "water_deepmd/water_192.xyz"), 0)
    ethanol = ase.io.read(locate(data, "ethanol_pbe/train.xyz"), ":32")
    return {
        "water 192 atoms": [water],
        "ethanol x1": ethanol[:1],
        "ethanol x8": ethanol[:8],
        "ethanol x32": ethanol[:32],
    }


def make_potential(name: str, seed: int = 0) -> Potential:
    if name == "mace-committee":
        return assemble([make_potential("mace", seed) for seed in (0, 1)])
    return Potential.create(ModelConfig(name, 5.0, (1, 6, 8), MODELS[name]), seed)


def time_calls(fn, params, graph, repeats: int) -> tuple[float, float]:
    """(compile + first call seconds, median seconds per later call)."""
    start = time.perf_counter()
    jax.block_until_ready(fn(params, graph))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(params, graph))
        times.append(time.perf_counter() - start)
    return first, float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--models", nargs="*", default=[*MODELS, "mace-committee"])
    parser.add_argument("--json", type=Path, default=ROOT / "runs" / "benchmarks" / "model_speed.json")
    args = parser.parse_args()
    rows = []
    for name in args.models:
        potential = make_potential(name)
        params_count = sum(x.size for x in jax.tree_util.tree_leaves(potential.params))
        fn = potential.predict_fn(compute_stress=False)
        for label, structures in systems().items():
            graph = potential.graph(structures)
            first, per_call = time_calls(fn, potential.params, graph, args.repeats)
            atoms = sum(len(a) for a in structures)
            rows.append(
                {
                    "model": name,
                    "parameters": int(params_count),
                    "system": label,
                    "atoms": atoms,
                    "edges": int(graph.edge_mask.sum()),
                    "ms_per_call": per_call * 1e3,
                    "us_per_atom": per_call * 1e6 / atoms,
                    "compile_s": first,
                    "load_avg": os.getloadavg()[0],
                }
            )
            r = rows[-1]
            print(
                f"{name:14s} {label:16s} {r['ms_per_call']:9.2f} ms/call {r['us_per_atom']:8.1f} µs/atom "
                f"(compile {first:5.1f} s, load {r['load_avg']:.1f})",
                flush=True,
            )
    atomic_write(
        args.json,
        json.dumps({"cpu_count": os.cpu_count(), "device": str(jax.devices()[0]), "rows": rows}, indent=2).encode(),
    )
    print(f"JSON: {args.json}")


if __name__ == "__main__":
    main()
