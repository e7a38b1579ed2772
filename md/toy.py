"""Small analytic systems that drive the integrators without any ML: for tests, examples, benchmarks.

* ``smooth_lennard_jones``: an ``atom_energy_fn`` (same slot as a model) whose
  pair energy is switched smoothly to zero (C2) between ``r_on`` and the
  cutoff, so energy and forces are continuous and NVE can conserve energy to
  the integrator's accuracy (the truncated-and-shifted ``lennard_jones`` model
  has a force jump at the cutoff that causes drift).
* ``harmonic_force_fn``: independent harmonic wells, E = 1/2 k |r - r0|^2.
"""

from __future__ import annotations

import jax.numpy as jnp

from mlpot.radial import smooth_step_down

ARGON = {"sigma": 3.405, "epsilon": 0.0104, "mass": 39.948}  # Å, eV, amu


def smooth_lennard_jones(sigma: float, epsilon: float, r_on: float, cutoff: float):
    """``(params, vectors, graph) -> (N,)`` eV: half the switched LJ pair energy on each atom."""

    def atom_energies(params, vectors, graph):
        r2 = jnp.sum(vectors**2, axis=-1)
        inside = (r2 < cutoff**2) & graph.edge_mask
        r = jnp.sqrt(jnp.where(inside, r2, 1.0))
        c6 = (sigma / r) ** 6
        pair = jnp.where(inside, 4 * epsilon * (c6**2 - c6) * smooth_step_down(r, r_on, cutoff), 0.0)
        return 0.5 * jnp.zeros(graph.species.shape[0], pair.dtype).at[graph.receivers].add(pair)

    return atom_energies


def harmonic_force_fn(positions, cell, force_args):
    """force_args = (centres (N,3) Å, k eV/Å^2): E = 1/2 k sum |r - r0|^2, F = -k (r - r0)."""
    centres, k = force_args
    d = positions - centres
    return 0.5 * k * jnp.sum(d**2), -k * d, jnp.zeros((3, 3), positions.dtype)


def argon_crystal(repeat: int = 3, lattice: float = 5.26, temperature_K: float = 60.0, seed: int = 0):
    """fcc argon (4 repeat^3 atoms) with Maxwell-Boltzmann momenta and zero total momentum."""
    from ase.build import bulk

    from md.velocities import maxwell_boltzmann

    atoms = bulk("Ar", "fcc", a=lattice, cubic=True).repeat(repeat)
    maxwell_boltzmann(atoms, temperature_K, seed)
    return atoms


def argon_potential(cutoff: float = 8.5):
    """The built-in (truncated and shifted) ``lennard_jones`` model for argon, float64."""
    from mlpot.potential import ModelConfig, Potential

    config = ModelConfig(
        "lennard_jones", cutoff, (18,), {"sigma": ARGON["sigma"], "epsilon": ARGON["epsilon"]}, dtype="float64"
    )
    return Potential.create(config)


def smooth_argon_forces(
    atoms, skin: float = 1.0, compute_stress: bool = False, capacity=None, headroom: float = 1.1, cutoff: float = 6.5
):
    """``Forces`` for smooth LJ argon (switched from cutoff - 1 Å to the cutoff)."""
    from md.forces import graph_forces

    energy_fn = smooth_lennard_jones(ARGON["sigma"], ARGON["epsilon"], cutoff - 1.0, cutoff)
    return graph_forces(
        energy_fn,
        {},
        cutoff,
        (18,),
        atoms,
        skin,
        compute_stress,
        headroom,
        capacity,
        cache_key=("smooth_argon", cutoff),
    )
