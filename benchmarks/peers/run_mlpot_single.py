"""Single-point throughput of mlpot: structures/s through ``mlpot.Calculator``,
one structure per call, and through ``Potential.predict`` on a packed batch.

Run with the project's own environment:
  .venv/bin/python benchmarks/peers/run_mlpot_single.py --system water --model painn --frames 32

Frames: water = the first ``--frames`` frames of DeePMD's 192-atom water
(distinct AIMD snapshots); cu = the 108-atom fcc cell rattled with a
different seed per frame. The first structure (compile) is timed apart;
then all frames are evaluated ``--repeats`` times (energy, forces and, the
cells being periodic, stress).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import common
import numpy as np

sys.path.insert(0, str(common.structures.ROOT))

from run_mlpot_ase import MODEL_CONFIGS, make_potential


def frames(system: str, count: int):
    if system == "water":
        from ase.io import read

        out = read(common.structures.data_dir() / common.structures.WATER_FILE, index=f":{count}")
        for atoms in out:
            atoms.calc = None
        return out
    return [common.structures.copper(108, seed=seed) for seed in range(count)]


def calculator_rate(potential, structures, repeats: int) -> dict:
    import mlpot

    calc = mlpot.Calculator(potential)
    first = structures[0].copy()
    start = time.perf_counter()
    first.calc = calc
    first.get_forces()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeats):
        for atoms in structures:
            atoms = atoms.copy()
            atoms.calc = calc
            atoms.get_forces()
            atoms.get_stress()
    elapsed = time.perf_counter() - start
    n = repeats * len(structures)
    return {"first_call_s": compile_s, "structures_per_s": n / elapsed, "compiles": calc.compile_count}


def batch_rate(potential, structures, repeats: int) -> dict:
    import jax

    start = time.perf_counter()
    jax.block_until_ready(potential.predict(structures))
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(potential.predict(structures))  # includes the host graph build
    elapsed = time.perf_counter() - start
    return {"first_call_s": first, "structures_per_s": repeats * len(structures) / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=["water", "cu"], default="water")
    parser.add_argument("--model", choices=sorted(MODEL_CONFIGS), default="painn")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    record = {
        "mode": "single_point",
        "system": args.system,
        "model": args.model,
        "frames": args.frames,
        "atoms_per_frame": 192 if args.system == "water" else 108,
        "repeats": args.repeats,
    }
    try:
        structures = frames(args.system, args.frames)
        species = sorted({int(z) for atoms in structures for z in np.unique(atoms.numbers)})
        potential = make_potential(args.model, species)
        record["calculator"] = calculator_rate(potential, structures, args.repeats)
        record["batched_predict"] = batch_rate(potential, structures, args.repeats)
        record["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported in the record, never hidden
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    record["peak_rss_mb"] = common.peak_rss_mb()
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
