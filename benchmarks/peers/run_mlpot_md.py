"""mlpot's own MD engine (``md.VelocityVerlet``: compiled chunks of NVE steps,
neighbour list rebuilt on the host only when an atom moved more than skin/2).

Run with the project's own environment:
  .venv/bin/python benchmarks/peers/run_mlpot_md.py --cases water:192,cu:108 --model painn

Same models, random weights and timing protocol as run_mlpot_ase.py, so the
two differ only in the engine. Skin 1.0 Å (the driver's default). The
closest-pair safety check still runs every step but with a 0 Å limit: the
weak random model lets atoms fly nearly freely at 300 K, and pairs closer
than the usual 0.5 Å limit would stop the run (see common.ENERGY_SCALE).
"""

from __future__ import annotations

import sys

import common

sys.path.insert(0, str(common.structures.ROOT))  # the checkout's mlpot and md, installed or not

from run_mlpot_ase import MODEL_CONFIGS, make_potential  # noqa: E402

SKIN = 1.0  # Å


def setup(atoms, block: int, model: str | None):
    from ase import units

    import md.drivers

    potential = make_potential(model or "painn", sorted(set(int(z) for z in atoms.numbers)))
    dynamics = md.drivers.Dynamics(atoms, "nve", common.DT_FS * units.fs, potential, skin=SKIN, min_distance=0.0)
    # run() syncs: it copies the state back into the atoms
    return (lambda: dynamics.run(block)), common.count_params(potential.params)


if __name__ == "__main__":
    model = sys.argv[sys.argv.index("--model") + 1] if "--model" in sys.argv else "painn"
    record = {
        "peer": "mlpot",
        "engine": f"mlpot md.VelocityVerlet (NVE, compiled chunks, skin {SKIN} Å)",
        "model": f"mlpot {model} (random weights)",
        "hyperparameters": MODEL_CONFIGS.get(model),
        "versions": common.versions("jax", "jaxlib", "flax", "ase"),
    }
    common.main(__doc__.splitlines()[0], record, setup)
