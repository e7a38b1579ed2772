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
One process runs its cases smallest first, so the reported peak RSS (the
process's high-water mark, ``ru_maxrss``) is that of the largest case so far.
A case estimated from the previous size to take over ``--limit`` seconds is
skipped and says so.
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

import structures

CUTOFF = 5.0  # Å, the same for every model (ours and peers')
TEMPERATURE = 300.0  # K, initial Maxwell-Boltzmann velocities
DT_FS = 1.0  # fs
# Every model's (random) output is multiplied by this, in eV: untrained
# networks give arbitrary forces that make atoms collide within a few steps,
# and an engine's safety checks or neighbour-list overflows would then time
# something else. Speed does not depend on the weights' values.
ENERGY_SCALE = 0.01


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cases", required=True, help="system:atoms,... e.g. water:192,cu:108 (see structures.py)")
    parser.add_argument("--block", type=int, default=10, help="MD steps per compiled call / timing block (first case)")
    parser.add_argument("--seconds", type=float, default=3.0, help="steady-state wall time to measure, at least")
    parser.add_argument("--limit", type=float, default=60.0, help="skip a case estimated to take longer (s)")
    parser.add_argument("--model", help="which model, for runners that offer several")
    parser.add_argument("--json", type=Path, help="also append the records here (JSON lines)")
    args = parser.parse_args()
    args.cases = [(name, int(n)) for name, n in (item.split(":") for item in args.cases.split(","))]
    return args


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


def initial_atoms(system: str, num_atoms: int):
    """The shared structure with 300 K Maxwell-Boltzmann velocities (fixed seed)."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    atoms = structures.build(system, num_atoms)
    MaxwellBoltzmannDistribution(atoms, temperature_K=TEMPERATURE, rng=np.random.default_rng(0))
    Stationary(atoms)
    return atoms


def count_params(tree) -> int:
    """Number of scalars in a parameter pytree (nested dicts / lists of arrays)."""
    if isinstance(tree, dict) or hasattr(tree, "items"):
        return sum(count_params(v) for _, v in tree.items())
    if isinstance(tree, (list, tuple)):
        return sum(count_params(v) for v in tree)
    return int(np.size(tree))


def time_blocks(run_block, block: int, seconds: float) -> dict:
    """Call ``run_block()`` (``block`` steps, returns once they are done) as in the module docstring."""
    start = time.perf_counter()
    run_block()
    warmup = time.perf_counter() - start
    steps, elapsed, cpu = 0, 0.0, 0.0
    while elapsed < seconds or steps == 0:
        t0, c0 = time.perf_counter(), time.process_time()
        run_block()
        elapsed += time.perf_counter() - t0
        cpu += time.process_time() - c0
        steps += block
    step_s = elapsed / steps
    return {
        # CPU seconds of this process (all threads) per step: less sensitive
        # than wall time to other jobs on a shared machine
        "step_cpu_s": cpu / steps,
        "warmup_s": warmup,
        "compile_s": max(0.0, warmup - block * step_s),  # warm-up less the steps it ran (+ setup_s, in main)
        "steady_steps": steps,
        "steady_s": elapsed,
        "step_s": step_s,
    }


def plan(case, previous: dict | None, args) -> tuple[int, str | None]:
    """(block, reason to skip or None) for a case, from the previous case of the same system.

    The step time is extrapolated linearly in N; blocks aim at ~1.5 s, and a
    case whose MD steps (warm-up block + one timed block; compile time not
    counted) are estimated above ``args.limit`` is skipped.
    """
    if previous is None:
        return args.block, None
    if previous.get("status") != "ok":
        return args.block, f"skipped: the {previous['atoms']}-atom case was {previous['status']}"
    step = previous["step_s"] * case[1] / previous["atoms"]
    block = int(max(1, min(args.block, round(1.5 / step))))
    estimate = 2 * block * step
    if estimate > args.limit:
        return block, (
            f"skipped: estimated {estimate:.0f} s (> {args.limit:.0f} s limit), "
            f"extrapolated from {previous['atoms']} atoms at {previous['step_s']:.3g} s/step"
        )
    return block, None


def emit(record: dict, args) -> None:
    line = json.dumps(record)
    if args.json:
        with open(args.json, "a") as f:
            f.write(line + "\n")
    print(line, flush=True)


def main(description: str, record: dict, setup, extra=None) -> None:
    """Runner skeleton: ``setup(atoms, block, model) -> (run_block, number of parameters)`` per
    case, smallest first; one JSON line per case on stdout. Any exception becomes a failed
    record, never hidden. ``setup_s`` (model + engine construction) counts towards compile
    time, as some engines compile there and others on the first step. ``extra()``, if
    given, adds engine-specific figures to each timed case's record."""
    args = parse_args(description)
    previous: dict[str, dict] = {}
    for system, num_atoms in sorted(args.cases, key=lambda c: c[1]):
        block, skip = plan((system, num_atoms), previous.get(system), args)
        out = dict(
            record,
            system=system,
            atoms=num_atoms,
            block=block,
            dt_fs=DT_FS,
            cutoff=CUTOFF,
            model_key=args.model,
            cpu_count=os.cpu_count(),
        )
        if skip:
            out.update(status="skipped", error=skip)
        else:
            try:
                atoms = initial_atoms(system, num_atoms)
                start = time.perf_counter()
                run_block, num_params = setup(atoms, block, args.model)
                setup_s = time.perf_counter() - start
                timing = time_blocks(run_block, block, args.seconds)
                timing["compile_s"] += setup_s
                out.update(setup_s=setup_s, num_params=num_params)
                per_s = 1.0 / timing["step_s"]
                out.update(
                    timing,
                    status="ok",
                    atom_steps_per_s=num_atoms * per_s,
                    atom_steps_per_cpu_s=num_atoms / timing["step_cpu_s"],
                    ns_per_day=per_s * DT_FS * 1e-6 * 86400,
                )
                if extra is not None:
                    out["engine_stats"] = extra()
            except Exception as exc:  # noqa: BLE001 - any failure is reported in the record
                traceback.print_exc()
                out.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        # high-water mark of the process so far; cases run smallest first
        out["peak_rss_mb"] = peak_rss_mb()
        previous[system] = out
        emit(out, args)
