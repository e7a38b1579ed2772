"""What every peer runner shares: arguments, the timing protocol and the JSON record.

Standard library, numpy and ASE only: this file runs inside each peer's own
virtual environment (``benchmarks/peers/.venv-<peer>``), never in ours.

Timing protocol (the same for every engine, ours included, see benchmarks/run.py):
  1. build the model (random weights: speed does not depend on training) and
     the engine for one system;
  2. warm-up: the first block of ``block`` MD steps, which includes every
     compile or first-call cost (``warmup_s``);
  3. steady state: more blocks of the same length, until at least ``seconds``
     of wall time have passed (at least one block). atom-steps/s =
     atoms x steps / time of the steady blocks; ns/day at dt = 1 fs.
Peak RSS is the process's high-water mark (``ru_maxrss``), so each run
benchmarks one system in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/, for structures.py

import structures  # noqa: E402

CUTOFF = 5.0  # Å, the same for every model (ours and peers')
TEMPERATURE = 300.0  # K, initial Maxwell-Boltzmann velocities
DT_FS = 1.0  # fs


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--system", choices=sorted(structures.SIZES), required=True)
    parser.add_argument("--atoms", type=int, required=True, help="one of the sizes in benchmarks/structures.py")
    parser.add_argument("--block", type=int, default=10, help="MD steps per compiled call / timing block")
    parser.add_argument("--seconds", type=float, default=3.0, help="steady-state wall time to measure, at least")
    parser.add_argument("--model", help="which model, for runners that offer several")
    parser.add_argument("--json", type=Path, help="also write the record here")
    return parser.parse_args()


def versions(*packages: str) -> dict:
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def initial_atoms(args: argparse.Namespace):
    """The shared structure with 300 K Maxwell-Boltzmann velocities (fixed seed)."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    atoms = structures.build(args.system, args.atoms)
    MaxwellBoltzmannDistribution(atoms, temperature_K=TEMPERATURE, rng=np.random.default_rng(0))
    Stationary(atoms)
    return atoms


def time_blocks(run_block, block: int, seconds: float) -> dict:
    """Call ``run_block()`` (``block`` steps, returns once they are done) as in the module docstring."""
    start = time.perf_counter()
    run_block()
    warmup = time.perf_counter() - start
    steps, elapsed = 0, 0.0
    while elapsed < seconds or steps == 0:
        t0 = time.perf_counter()
        run_block()
        elapsed += time.perf_counter() - t0
        steps += block
    step_s = elapsed / steps
    return {
        "warmup_s": warmup,
        "compile_s": max(0.0, warmup - block * step_s),  # warm-up less the steps it ran
        "steady_steps": steps,
        "steady_s": elapsed,
        "step_s": step_s,
    }


def finish(record: dict, args: argparse.Namespace, timing: dict | None, error: str | None = None) -> None:
    """Complete the record, print it as the last line of stdout, write --json."""
    record.update(system=args.system, atoms=args.atoms, block=args.block, dt_fs=DT_FS, cutoff=CUTOFF)
    record.setdefault("model_key", args.model)
    record.update(cpu_count=os.cpu_count(), peak_rss_mb=peak_rss_mb())
    if timing is not None:
        per_s = 1.0 / timing["step_s"]
        record.update(timing, status="ok", atom_steps_per_s=args.atoms * per_s, ns_per_day=per_s * DT_FS * 1e-6 * 86400)
    else:
        record.update(status="failed", error=error)
    line = json.dumps(record)
    if args.json:
        args.json.write_text(line + "\n")
    print(line, flush=True)


def main(description: str, record: dict, setup) -> None:
    """Runner skeleton: ``setup(atoms, args) -> run_block``; any exception becomes a failed record."""
    args = parse_args(description)
    try:
        run_block = setup(initial_atoms(args), args)
        timing = time_blocks(run_block, args.block, args.seconds)
    except Exception as exc:  # reported, never hidden: the record carries the error
        traceback.print_exc()
        finish(record, args, None, f"{type(exc).__name__}: {exc}")
        sys.exit(1)
    finish(record, args, timing)
