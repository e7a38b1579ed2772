"""InstaDeep's mlip (JAX): its MACE through its own jax-md simulation engine, NVE.

Run inside benchmarks/peers/.venv-mlip:
  benchmarks/peers/.venv-mlip/bin/python benchmarks/peers/run_mlip.py --cases water:192,cu:108

Model: ``mlip.models.Mace`` with random weights (``ForceField.from_mlip_network``),
sized like mlpot's "mace" model (HYPERPARAMETERS; the other fields are
mlip's defaults). Engine: ``JaxMDSimulationEngine`` with
NVE velocity Verlet; one ``run()`` = one episode of --block steps (mlip jits
each episode as a ``fori_loop``), logging one snapshot per episode so that
logging costs as little as mlip allows.
"""

from __future__ import annotations

import common

HYPERPARAMETERS = {
    "num_channels": 32,  # mlpot: features = 32
    "l_max": 2,  # mlpot: l_max = 2
    "node_symmetry": 1,  # mlpot: hidden_l = 1
    "correlation": 3,
    "num_layers": 2,
    "num_rbf": 8,
    "readout_irreps": ["16x0e", "0e"],  # mlpot: readout_hidden = 16
    "radial_mlp_hidden": [64, 64, 64],
    "avg_num_neighbors": 10.0,
}


def make_force_field(atomic_numbers: list[int]):
    from mlip.data import DatasetInfo
    from mlip.models import ForceField, Mace

    info = DatasetInfo(
        atomic_energies_map={z: 0.0 for z in atomic_numbers},
        graph_cutoff_angstrom=common.CUTOFF,
        avg_num_neighbors=HYPERPARAMETERS["avg_num_neighbors"],
        scaling_stdev=common.ENERGY_SCALE,
    )
    config = Mace.Config(**{**HYPERPARAMETERS, "readout_irreps": tuple(HYPERPARAMETERS["readout_irreps"])})
    return ForceField.from_mlip_network(Mace(config, info), seed=0)


def setup(atoms, block: int, model: str | None):
    from mlip.simulation.configs.simulation_config import SimulationLogOutputs
    from mlip.simulation.enums import MDIntegrator
    from mlip.simulation.jax_md import JaxMDSimulationEngine

    force_field = make_force_field(sorted({int(z) for z in atoms.numbers}))
    config = JaxMDSimulationEngine.Config(
        md_integrator=MDIntegrator.NVE_VELOCITY_VERLET,
        num_steps=block,
        num_episodes=1,
        snapshot_interval=block,
        timestep_fs=common.DT_FS,
        temperature_kelvin=common.TEMPERATURE,
        log_outputs=SimulationLogOutputs(velocities=False, forces=False, partial_charges=False),
    )
    engine = JaxMDSimulationEngine(atoms, force_field, config)
    return engine.run, common.count_params(force_field.params)  # run() continues from the engine's state


if __name__ == "__main__":
    record = {
        "peer": "mlip",
        "engine": "mlip JaxMDSimulationEngine, NVE velocity Verlet",
        "model": "MACE (mlip.models.Mace, random weights)",
        "hyperparameters": HYPERPARAMETERS,
        "versions": common.versions("mlip", "jax", "jaxlib", "jax-md", "flax"),
    }
    common.main(__doc__.splitlines()[0], record, setup)
