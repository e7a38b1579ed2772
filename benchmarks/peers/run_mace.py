"""MACE (mace-torch, PyTorch, CPU) through its ASE calculator, driven by ASE's VelocityVerlet.

Run inside benchmarks/peers/.venv-mace:
  benchmarks/peers/.venv-mace/bin/python benchmarks/peers/run_mace.py --cases water:192,cu:108

Model: ScaleShiftMACE with random weights, sized like mlpot's "mace" model
(see HYPERPARAMETERS), float32 (mlpot's network runs in float32 too). The
calculator computes energy, forces and stress on every call, as it does for
any ASE driver; that is its cost as users meet it.
"""

from __future__ import annotations

import common

HYPERPARAMETERS = {
    "r_max": common.CUTOFF,
    "num_bessel": 8,
    "num_polynomial_cutoff": 5,
    "max_ell": 2,  # spherical harmonics of the edges (mlpot: l_max = 2)
    "hidden_irreps": "32x0e + 32x1o",  # mlpot: features = 32, hidden_l = 1
    "MLP_irreps": "16x0e",  # readout MLP (mlpot: readout_hidden = 16)
    "correlation": 3,
    "num_interactions": 2,
    "radial_MLP": [64, 64, 64],
    "interaction": "RealAgnosticResidualInteractionBlock",
    "avg_num_neighbors": 10.0,
    "dtype": "float32",
}


def make_model(atomic_numbers: list[int]):
    import numpy as np
    import torch
    from e3nn import o3
    from mace import modules

    h = HYPERPARAMETERS
    interaction = modules.interaction_classes[h["interaction"]]
    torch.manual_seed(0)
    return modules.ScaleShiftMACE(
        r_max=h["r_max"],
        num_bessel=h["num_bessel"],
        num_polynomial_cutoff=h["num_polynomial_cutoff"],
        max_ell=h["max_ell"],
        interaction_cls=interaction,
        interaction_cls_first=interaction,
        num_interactions=h["num_interactions"],
        num_elements=len(atomic_numbers),
        hidden_irreps=o3.Irreps(h["hidden_irreps"]),
        MLP_irreps=o3.Irreps(h["MLP_irreps"]),
        atomic_energies=np.zeros(len(atomic_numbers)),
        avg_num_neighbors=h["avg_num_neighbors"],
        atomic_numbers=atomic_numbers,
        correlation=h["correlation"],
        gate=torch.nn.functional.silu,
        radial_MLP=h["radial_MLP"],
        atomic_inter_scale=common.ENERGY_SCALE,
        atomic_inter_shift=0.0,
    )


def setup(atoms, block: int, model: str | None):
    import torch
    from ase import units
    from ase.md.verlet import VelocityVerlet
    from mace.calculators import MACECalculator

    torch.set_default_dtype(torch.float32)
    model = make_model(sorted({int(z) for z in atoms.numbers}))
    atoms.calc = MACECalculator(models=model, device="cpu", default_dtype="float32")
    dynamics = VelocityVerlet(atoms, timestep=common.DT_FS * units.fs)
    return (lambda: dynamics.run(block)), sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    record = {
        "peer": "mace",
        "engine": "mace-torch MACECalculator + ASE VelocityVerlet (NVE)",
        "model": "MACE (ScaleShiftMACE, random weights)",
        "hyperparameters": HYPERPARAMETERS,
        "versions": common.versions("mace-torch", "torch", "e3nn", "ase"),
    }
    common.main(__doc__.splitlines()[0], record, setup)
