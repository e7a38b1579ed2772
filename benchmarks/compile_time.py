"""Compile time of an MD run: the engine's program alone, one fresh process per case.

    taskset -c 0 .venv/bin/python benchmarks/compile_time.py [--models mace,painn-fast] [--cases water:192,cu:4000]

Each case runs in its own Python process with no persistent compilation cache,
so every figure is a cold compile as a user's first run sees it. Reported per
case: ``engine_s``, the construction of ``md.simulation.Simulation`` (tracing,
lowering and XLA compilation of the chunk program, the first neighbour list
and the first force evaluation, about ``one_step_s``), the figure the
"compile time of an MD run" target is about, since a trained model is loaded
from its file; ``compile_only_s``, the part of it JAX reports as tracing,
lowering and compiling (``jax.monitoring`` events), which separates the
compile from the first evaluation on large systems; and
``model_init_s``, the random-weight initialisation that benchmarks/run.py's
setup also pays (``Potential.create``: a jitted ``init``), for reference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one_case(model: str, system: str, num_atoms: int) -> dict:
    sys.path[:0] = [str(HERE), str(HERE / "peers"), str(HERE.parent)]
    import common
    import jax
    from ase import units
    from md_speed import engine_runner
    from run_mlpot_ase import make_potential

    atoms = common.initial_atoms(system, num_atoms)
    start = time.perf_counter()
    potential = make_potential(model, sorted({int(z) for z in atoms.numbers}))
    init_s = time.perf_counter() - start
    durations: dict = {}

    def record(event, seconds, **_):
        if event.startswith("/jax/core/compile/"):
            durations[event] = durations.get(event, 0.0) + seconds

    jax.monitoring.register_event_duration_secs_listener(record)
    engine_s, segment, _ = engine_runner(potential, atoms, common.DT_FS * units.fs, 0.5)
    compile_events = dict(durations)
    step_s = min(segment(1) for _ in range(3))  # the first force evaluation costs about one step
    return {
        "model": model,
        "system": system,
        "atoms": num_atoms,
        "engine_s": engine_s,
        # JAX's own timings of the programs compiled while the engine was built: tracing,
        # lowering to MLIR and XLA's compile (the chunk program and a few small helpers)
        "compile_only_s": sum(compile_events.values()),
        "compile_events_s": {k.rsplit("/", 1)[-1]: v for k, v in compile_events.items()},
        "one_step_s": step_s,
        "model_init_s": init_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="painn-fast,mace")
    parser.add_argument("--cases", default="water:192,water:1536,cu:108,cu:4000")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # model:system:atoms, run in this process
    parser.add_argument("--json", type=Path, default=HERE / "results" / "compile_time.json")
    args = parser.parse_args()
    if args.one:
        model, system, atoms = args.one.split(":")
        print(json.dumps(one_case(model, system, int(atoms))), flush=True)
        return 0
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    records = []
    for model in args.models.split(","):
        for case in args.cases.split(","):
            result = subprocess.run(
                [sys.executable, __file__, "--one", f"{model}:{case}"],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
            record = json.loads(lines[-1]) if lines else {"model": model, "case": case, "error": result.stderr[-400:]}
            records.append(record)
            if "engine_s" in record:
                print(
                    f"{model:12s} {case:12s} MD engine {record['engine_s']:5.1f} s, of which compiling"
                    f" {record['compile_only_s']:5.1f} s (one step {record['one_step_s']:.2f} s)"
                    f"   (random-weight model init {record['model_init_s']:4.1f} s)",
                    flush=True,
                )
            else:
                print(f"{model:12s} {case:12s} failed: {record['error']}", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
