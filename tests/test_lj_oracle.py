"""A parameter-free LJ through the full graph -> autodiff -> calculator path vs ASE's LennardJones."""

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.lj import LennardJones as AseLJ

from mlpot import Calculator, ModelConfig, Potential

SIGMA, EPSILON, RC = 2.3, 0.0104, 6.9


@pytest.fixture(scope="module")
def lj_calculator():
    config = ModelConfig("lennard_jones", RC, (18,), {"sigma": SIGMA, "epsilon": EPSILON}, dtype="float64")
    return Calculator(Potential.create(config))


def argon_triclinic():
    atoms = bulk("Ar", "fcc", 5.26, cubic=True) * (2, 2, 2)  # 10.5 Å box: shorter than 2 r_c
    cell = atoms.cell.array.copy()
    cell[0, 1] += 0.7
    cell[2, 0] -= 0.4
    atoms.set_cell(cell, scale_atoms=True)
    atoms.rattle(0.15, seed=2)
    atoms.positions[:4] += 2 * atoms.cell[0] - atoms.cell[2]  # unwrapped atoms are fine
    return atoms


def argon_cluster():
    atoms = molecule("CH4")  # a tetrahedron of 5 "argon" atoms, non-periodic
    atoms.set_chemical_symbols(["Ar"] * 5)
    atoms.positions *= 3.4
    return atoms


@pytest.mark.parametrize("make", [argon_triclinic, argon_cluster], ids=["triclinic", "cluster"])
def test_matches_ase_lennard_jones(lj_calculator, make):
    ours, theirs = make(), make()
    ours.calc = lj_calculator
    theirs.calc = AseLJ(sigma=SIGMA, epsilon=EPSILON, rc=RC)
    e_ref = theirs.get_potential_energy()
    assert ours.get_potential_energy() == pytest.approx(e_ref, rel=1e-8)
    f_ref = theirs.get_forces()
    np.testing.assert_allclose(ours.get_forces(), f_ref, rtol=1e-8, atol=1e-8 * np.abs(f_ref).max())
    np.testing.assert_allclose(ours.get_potential_energies(), theirs.get_potential_energies(), rtol=1e-8, atol=1e-12)
    if all(ours.pbc):
        s_ref = theirs.get_stress()
        np.testing.assert_allclose(ours.get_stress(), s_ref, rtol=1e-8, atol=1e-8 * np.abs(s_ref).max())


def test_follows_the_float_policy():
    """The config's dtype decides the precision of the pair sums, as for the networks: float32 agrees with
    float64 to float32 rounding, not to the last digit."""
    atoms = argon_triclinic()
    energies = {}
    for dtype in ("float32", "float64"):
        config = ModelConfig("lennard_jones", RC, (18,), {"sigma": SIGMA, "epsilon": EPSILON}, dtype=dtype)
        atoms.calc = Calculator(Potential.create(config))
        energies[dtype] = atoms.get_potential_energies()
    np.testing.assert_allclose(energies["float32"], energies["float64"], rtol=1e-5)
    assert np.abs(energies["float32"] - energies["float64"]).max() > 1e-12
