"""Shared fixtures: small float64 models and structures for physics tests."""

import os

# OpenBLAS threads spin against JAX's on a 2-core machine: a 3x3 solve took 11 ms.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

# First, before numpy's and JAX's threads start: its malloc settings (mlpot.hostmem) and x64.
import mlpot  # noqa: F401, I001

from pathlib import Path

import jax
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from mlpot import ModelConfig, Potential

ROOT = Path(__file__).resolve().parents[1]


def pair_set(i, j, shifts) -> list:
    """Neighbour pairs (i, j, integer shift) in sorted order, to compare searches as multisets."""
    return sorted(zip(i.tolist(), j.tolist(), map(tuple, np.rint(shifts).astype(int).tolist())))


def perturbed(potential: Potential, scale: float = 0.3, seed: int = 0) -> Potential:
    """Every bias (1-d parameter) shifted by N(0, scale^2): a fresh init has zero biases,
    which hides terms that only a trained model has (a bias acting beyond the cutoff)."""
    leaves, treedef = jax.tree_util.tree_flatten(potential.params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    noisy = [x + scale * jax.random.normal(k, x.shape, x.dtype) if x.ndim == 1 else x for k, x in zip(keys, leaves)]
    return Potential(potential.config, jax.tree_util.tree_unflatten(treedef, noisy))


def small_painn(species, cutoff=4.0, dtype="float64", seed=0) -> Potential:
    """A small PaiNN with perturbed (trained-like, nonzero-bias) parameters."""
    config = ModelConfig(
        "painn",
        cutoff,
        species,
        {"features": 16, "num_interactions": 2, "num_basis": 8},
        reference_energies=[-1.5 * (k + 1) for k in range(len(species))],
        energy_scale=[0.7 + 0.1 * k for k in range(len(species))],
        dtype=dtype,
    )
    return perturbed(Potential.create(config, seed), seed=seed)


@pytest.fixture(scope="session")
def painn64():
    """A random-init PaiNN (float64 network) for H, C, O, Si: a smooth many-body function."""
    return small_painn((1, 6, 8, 14))


def ethanol() -> Atoms:
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=3)
    return atoms


def triclinic_si(repeat=(1, 1, 1), seed=4) -> Atoms:
    atoms = bulk("Si", "diamond", 5.43) * repeat
    cell = atoms.cell.array.copy()
    cell[2] += [0.3, -0.2, 0.1]  # break every symmetry of the lattice
    atoms.set_cell(cell, scale_atoms=True)
    atoms.rattle(0.08, seed=seed)
    return atoms


def energy(potential: Potential, atoms: Atoms) -> float:
    """Total energy (eV) of one structure through ``Potential.predict``."""
    return float(potential.predict(atoms).energy[0])


def finite_difference_stress(energy_of, atoms: Atoms, h: float = 1e-5) -> np.ndarray:
    """(1/V) dE/d(eps) by central differences of ``energy_of(atoms) -> float`` under a symmetric strain.

    An off-diagonal perturbation moves eps_ab and eps_ba together by h/2 each.
    """
    volume = atoms.get_volume()
    stress = np.zeros((3, 3))
    for a in range(3):
        for b in range(a, 3):
            strain = np.zeros((3, 3))
            strain[a, b] = strain[b, a] = h / 2 if a != b else h
            values = []
            for sign in (1, -1):
                deformed = atoms.copy()
                deformed.set_cell(atoms.cell.array @ (np.eye(3) + sign * strain), scale_atoms=True)
                values.append(energy_of(deformed))
            stress[a, b] = stress[b, a] = (values[0] - values[1]) / (2 * h) / volume
    return stress
