"""mlpot through ``mlpot.Calculator``, driven by ASE's VelocityVerlet (NVE).

Run with the project's own environment:
  .venv/bin/python benchmarks/peers/run_mlpot_ase.py --cases water:192,cu:108 --model painn

This is the "ASE's VelocityVerlet driving our calculator" figure of the
issue: the same model as our engine, one host round trip (neighbour list,
padding, jitted prediction) per step. Models: ``MODEL_CONFIGS`` in
benchmarks/run.py's terms, random weights, cutoff 5 Å, float32 network.
"""

from __future__ import annotations

import sys

import common

sys.path.insert(0, str(common.structures.ROOT))  # the checkout's mlpot, installed or not

# Our models in the benchmark: key -> (mlpot.models name, hyperparameters).
# "painn" and "mace" are the models' defaults, written out so the tables can
# state them. "painn-fast" is the fast model compared with apax's GMNN; "painn-small"
# (its 16-Bessel predecessor, 1.3x slower, the fast model up to session 4) stays for older runs.
MODEL_CONFIGS = {
    "painn-fast": ("painn", {"features": 16, "num_interactions": 2, "num_basis": 8}),
    "painn-small": ("painn", {"features": 16, "num_interactions": 2, "num_basis": 16}),
    "painn": ("painn", {"features": 64, "num_interactions": 3, "num_basis": 16}),
    "mace": (
        "mace",
        {"features": 32, "hidden_l": 1, "l_max": 2, "correlation": 3, "num_interactions": 2, "num_basis": 8},
    ),
    # A pair potential in the same model slot (same graph, autodiff, calculator and engine path):
    # its force call costs little, so engine vs ASE VV with it measures the drivers' own overhead.
    # sigma well below every bond length keeps water's O-H pairs tame for a timing run.
    "lj": ("lennard_jones", {"sigma": 0.6, "epsilon": 0.01}),
}


def make_potential(name: str, species):
    from mlpot import ModelConfig, Potential

    if name not in MODEL_CONFIGS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODEL_CONFIGS)}")
    model, hyperparameters = MODEL_CONFIGS[name]
    config = ModelConfig(
        name=model,
        cutoff=common.CUTOFF,
        species=tuple(species),
        hyperparameters=hyperparameters,
        energy_scale=(common.ENERGY_SCALE,) * len(species),
    )
    return Potential.create(config, seed=0)


def setup(atoms, block: int, model: str | None):
    from ase import units
    from ase.md.verlet import VelocityVerlet

    import mlpot

    potential = make_potential(model or "painn", sorted({int(z) for z in atoms.numbers}))
    atoms.calc = mlpot.Calculator(potential)
    dynamics = VelocityVerlet(atoms, timestep=common.DT_FS * units.fs)
    return (lambda: dynamics.run(block)), common.count_params(potential.params)


if __name__ == "__main__":
    model = sys.argv[sys.argv.index("--model") + 1] if "--model" in sys.argv else "painn"
    record = {
        "peer": "mlpot-ase",
        "engine": "mlpot.Calculator + ASE VelocityVerlet (NVE)",
        "model": f"mlpot {model} (random weights)",
        "hyperparameters": MODEL_CONFIGS.get(model),
        "versions": common.versions("jax", "jaxlib", "flax", "ase"),
    }
    common.main(__doc__.splitlines()[0], record, setup)
