"""apax (GMNN, JAX) through its own jax-md MD engine, NVE.

Run inside benchmarks/peers/.venv-apax:
  benchmarks/peers/.venv-apax/bin/python benchmarks/peers/run_apax.py --cases water:192,cu:108

Model: apax's default GMNN (``GMNNConfig()`` defaults, listed in
HYPERPARAMETERS; r_max = 5 Å is already apax's default and our cutoff), random
weights. Engine: the pieces ``apax md`` assembles in ``apax.md.simulate``
(``md_setup`` and ``run_sim``): fractional coordinates, jax-md's sparse
neighbour list with apax's settings (``disable_cell_list=True``,
dr_threshold 0.5 Å), ``get_ensemble`` NVE, and the same jitted
``fori_loop`` over ``n_inner`` (= --block) steps with a neighbour update per
step. Left out: the per-step trajectory ``io_callback`` and checkpoints of
``run_sim`` (they only add to apax's time), so this is apax at its fastest.
``md_setup`` itself cannot be called because it loads trained parameters
from a model directory.
"""

from __future__ import annotations

import common

MD_SETTINGS = {"dr_threshold": 0.5, "extra_capacity": 0, "md_ensemble": "nve", "dt_fs": common.DT_FS}


def gmnn_config():
    from apax.config.model_config import GMNNConfig

    return GMNNConfig()  # apax's defaults: the "default GMNN" of the issue


def setup(atoms, block: int, model: str | None):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from apax.config.md_config import NVEOptions
    from apax.md.sim_utils import SimulationFunctions, System
    from apax.md.simulate import create_energy_fn, get_ensemble
    from apax.utils.jax_md_reduced import partition, space

    config = gmnn_config()
    system = System.from_atoms(atoms)
    displacement_fn, shift_fn = space.periodic_general(system.box, fractional_coordinates=True, wrapped=True)
    builder = config.get_builder()(config.model_dump())
    energy_model = builder.build_energy_model(
        scale=common.ENERGY_SCALE, apply_mask=True, init_box=np.array(system.box), inference_disp_fn=displacement_fn
    )
    neighbor_fn = partition.neighbor_list(
        displacement_fn,
        system.box,
        config.basis.r_max,
        MD_SETTINGS["dr_threshold"],
        fractional_coordinates=True,
        format=partition.Sparse,
        disable_cell_list=True,
    )
    neighbor = neighbor_fn.allocate(system.positions, extra_capacity=MD_SETTINGS["extra_capacity"])
    params = energy_model.init(
        jax.random.PRNGKey(0), system.positions, system.atomic_numbers, neighbor, system.box, jnp.zeros(3)
    )
    energy_fn = create_energy_fn(energy_model.apply, params, system.atomic_numbers, 1)
    sim_fns = SimulationFunctions(energy_fn, None, shift_fn, neighbor_fn)
    ensemble = NVEOptions(name="nve", dt=common.DT_FS)
    init_fn, apply_fn, kT, _ = get_ensemble(ensemble, sim_fns)
    state = init_fn(jax.random.PRNGKey(1), system.positions, box=system.box, mass=system.masses, neighbor=neighbor)

    @jax.jit
    def sim(state, neighbor):  # run_sim's inner loop, without the trajectory callback
        def body(i, carry):
            state, neighbor = carry
            state = apply_fn(state, neighbor=neighbor, box=system.box, kT=kT(i))
            return state, neighbor.update(state.position)

        return jax.lax.fori_loop(0, block, body, (state, neighbor))

    carry = {"state": state, "neighbor": neighbor}

    def run_block():
        state, neighbor = sim(carry["state"], carry["neighbor"])
        jax.block_until_ready(state.position)
        if neighbor.did_buffer_overflow:  # as run_sim: reallocate and redo the block from the old state
            state, neighbor = carry["state"], neighbor_fn.allocate(carry["state"].position)
        carry.update(state=state, neighbor=neighbor)

    return run_block, common.count_params(params)


if __name__ == "__main__":
    record = {
        "peer": "apax",
        "engine": "apax jax-md NVE loop (apax.md.simulate pieces, no trajectory I/O)",
        "model": "GMNN (apax default config, random weights)",
        "hyperparameters": {**gmnn_config().model_dump(mode="json"), **MD_SETTINGS},
        "versions": common.versions("apax", "jax", "jaxlib", "flax"),
    }
    common.main(__doc__.splitlines()[0], record, setup)
