"""mlpot's own MD engine: compiled chunks of NVE velocity-Verlet steps, the
neighbour list rebuilt on the host only when an atom moved more than skin/2.

Run with the project's own environment:
  .venv/bin/python benchmarks/peers/run_mlpot_md.py --cases water:192,cu:108 --model painn

The engine is set up by ``engine_runner`` of benchmarks/md_speed.py (the
engine-vs-ASE benchmark, whose figures these are), so both benchmarks time
the same thing; without it (an older checkout) ``md.drivers.Dynamics`` is
used. Same models, random weights and timing protocol as run_mlpot_ase.py,
so the two differ only in the engine. The closest-pair safety check runs
every step with a 0 Å limit: the weak random model lets atoms fly nearly
freely at 300 K (see common.ENERGY_SCALE).
"""

from __future__ import annotations

import sys

import common

sys.path.insert(0, str(common.structures.ROOT))  # the checkout's mlpot and md, installed or not

from run_mlpot_ase import MODEL_CONFIGS, make_potential

SKIN = 0.5  # Å, the engine's default


def setup(atoms, block: int, model: str | None):
    from ase import units

    potential = make_potential(model or "painn", sorted({int(z) for z in atoms.numbers}))
    dt = common.DT_FS * units.fs
    try:
        from md_speed import engine_runner
    except ImportError:  # md_speed.py without engine_runner: the public driver does the same
        import md.drivers

        dynamics = md.drivers.Dynamics(atoms, "nve", dt, potential, skin=SKIN, min_distance=0.0)
        return (lambda: dynamics.run(block)), common.count_params(potential.params)
    compile_s, segment, stats = engine_runner(potential, atoms, dt, SKIN)  # also inside our setup_s
    # The MD program's own compile, apart from the random-weight model init the setup also pays
    # (a trained model is loaded, not initialised): the figure for "compile time of an MD run".
    STATS.append(lambda: stats() | {"engine_compile_s": compile_s})
    return (lambda: segment(block)), common.count_params(potential.params)


STATS: list = []  # engine_runner's stats() of the current case (rebuilds, edges, compiles)


def extra() -> dict:
    """Neighbour-list figures of the case just timed, when md_speed provides them."""
    return STATS.pop()() if STATS else {}


if __name__ == "__main__":
    model = sys.argv[sys.argv.index("--model") + 1] if "--model" in sys.argv else "painn"
    record = {
        "peer": "mlpot",
        "engine": f"mlpot engine (NVE, compiled chunks, skin {SKIN} Å)",
        "model": f"mlpot {model} (random weights)",
        "hyperparameters": MODEL_CONFIGS.get(model),
        "versions": common.versions("jax", "jaxlib", "flax", "ase"),
    }
    common.main(__doc__.splitlines()[0], record, setup, extra)
