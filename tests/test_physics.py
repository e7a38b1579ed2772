"""Forces and stress from autodiff against finite differences; invariances; extensivity; smoothness."""

import numpy as np
import pytest
from ase import Atoms
from conftest import energy, ethanol, finite_difference_stress, triclinic_si
from scipy.spatial.transform import Rotation

from mlpot import Calculator


def finite_difference_forces(potential, atoms, h=1e-5):  # float64 energies: truncation O(h^2) ~ 1e-8
    forces = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for k in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, k] += h
            minus.positions[i, k] -= h
            forces[i, k] = -(energy(potential, plus) - energy(potential, minus)) / (2 * h)
    return forces


def small_cell() -> Atoms:
    """Two atoms in a triclinic box shorter than the cutoff in every direction."""
    atoms = Atoms(
        "SiSi",
        positions=[[0.1, 0.2, 0.0], [1.3, 1.1, 1.2]],
        cell=[[2.6, 0.0, 0.0], [0.4, 2.5, 0.0], [0.3, -0.2, 2.7]],
        pbc=True,
    )
    return atoms


@pytest.mark.parametrize("make", [ethanol, triclinic_si, small_cell], ids=["molecule", "triclinic", "small_cell"])
def test_forces_are_minus_energy_gradient(painn64, make):
    atoms = make()
    forces = np.asarray(painn64.predict(atoms).forces[: len(atoms)])
    reference = finite_difference_forces(painn64, atoms)
    assert np.abs(forces).max() > 1e-3  # a test that cannot be satisfied by zeros
    np.testing.assert_allclose(forces, reference, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("make", [triclinic_si, small_cell], ids=["triclinic", "small_cell"])
def test_stress_is_strain_derivative(painn64, make):
    atoms = make()
    stress = np.asarray(painn64.predict(atoms).stress[0])
    reference = finite_difference_stress(lambda a: energy(painn64, a), atoms)
    assert np.abs(stress).max() > 1e-5
    np.testing.assert_allclose(stress, reference, atol=1e-8, rtol=1e-5)
    np.testing.assert_allclose(stress, stress.T, atol=1e-12)


def test_translation_rotation_permutation_invariance(painn64):
    atoms = ethanol()
    reference = painn64.predict(atoms)
    e0, f0 = float(reference.energy[0]), np.asarray(reference.forces[: len(atoms)])

    moved = atoms.copy()
    moved.positions += [3.1, -7.2, 0.4]
    assert energy(painn64, moved) == pytest.approx(e0, abs=1e-10)

    rotation = Rotation.random(random_state=7).as_matrix()
    rotated = atoms.copy()
    rotated.positions = atoms.positions @ rotation.T
    out = painn64.predict(rotated)
    assert float(out.energy[0]) == pytest.approx(e0, abs=1e-10)
    np.testing.assert_allclose(np.asarray(out.forces[: len(atoms)]), f0 @ rotation.T, atol=1e-10)

    order = np.random.default_rng(1).permutation(len(atoms))
    permuted = atoms[order]
    out = painn64.predict(permuted)
    assert float(out.energy[0]) == pytest.approx(e0, abs=1e-10)
    np.testing.assert_allclose(np.asarray(out.forces[: len(atoms)]), f0[order], atol=1e-10)


def test_periodic_rotation_invariance(painn64):
    atoms = triclinic_si()
    e0 = energy(painn64, atoms)
    stress0 = np.asarray(painn64.predict(atoms).stress[0])
    rotation = Rotation.random(random_state=11).as_matrix()
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell.array @ rotation.T, scale_atoms=True)
    out = painn64.predict(rotated)
    assert float(out.energy[0]) == pytest.approx(e0, abs=1e-10)
    np.testing.assert_allclose(np.asarray(out.stress[0]), rotation @ stress0 @ rotation.T, atol=1e-10)


def test_supercell_energy_is_extensive(painn64):
    atoms = triclinic_si()
    e1 = energy(painn64, atoms)
    e8 = energy(painn64, atoms * (2, 2, 2))
    assert e8 == pytest.approx(8 * e1, rel=1e-10)
    stress1 = np.asarray(painn64.predict(atoms).stress[0])
    stress8 = np.asarray(painn64.predict(atoms * (2, 2, 2)).stress[0])
    np.testing.assert_allclose(stress8, stress1, atol=1e-10)


def test_energy_and_forces_continuous_across_cutoff(painn64):
    """A neighbour approaching the cutoff from both sides: E and F have no jump."""
    cutoff = painn64.cutoff

    def at(d):
        atoms = Atoms("SiOSi", positions=[[0, 0, 0], [1.6, 0, 0], [-0.3, 1.0, 0]])
        atoms.positions[1] = atoms.positions[2] + [d, 0.0, 0.0]  # Si(2)...O at distance d
        atoms.positions[0] = [-5.0, 5.0, 5.0]  # far from both
        return energy(painn64, atoms), np.asarray(painn64.predict(atoms).forces[:3])

    energies, forces = zip(*(at(d) for d in np.linspace(cutoff - 1e-4, cutoff + 1e-4, 9)))  # F ~ (r_c - d)^2 inside
    assert np.ptp(energies) < 1e-9
    assert np.abs(np.diff(forces, axis=0)).max() < 1e-7
    # ... while the pair does interact inside the cutoff (a model that dropped it would pass the above)
    inside, beyond = at(cutoff - 0.5), at(cutoff + 0.1)
    assert abs(inside[0] - beyond[0]) > 1e-4 and np.abs(inside[1]).max() > 1e-4


def test_edges_beyond_cutoff_contribute_nothing(painn64):
    """A list built with a Verlet skin (what MD uses) gives the same energy, forces and stress.

    painn64 has nonzero biases everywhere: a bias applied after the envelope
    would make every skin edge (and every padding edge) count.
    """
    atoms = triclinic_si((2, 1, 1))
    run = painn64.predict_fn()
    exact_graph = painn64.graph(atoms)
    skinned_graph = painn64.graph(atoms, skin=1.5, num_nodes=40, num_edges=4000, num_graphs=2)
    real_edges = [int(np.sum(g.edge_mask)) for g in (exact_graph, skinned_graph)]
    assert real_edges[1] > 1.5 * real_edges[0]  # the skin really added edges
    exact, skinned = run(painn64.params, exact_graph), run(painn64.params, skinned_graph)
    n = len(atoms)
    assert float(skinned.energy[0]) == pytest.approx(float(exact.energy[0]), abs=1e-10)
    np.testing.assert_allclose(skinned.forces[:n], exact.forces[:n], atol=1e-10)
    np.testing.assert_allclose(skinned.stress[0], exact.stress[0], atol=1e-10)


def test_calculator_matches_predict(painn64):
    atoms = triclinic_si()
    atoms.calc = Calculator(painn64)
    out = painn64.predict(atoms)
    assert atoms.get_potential_energy() == pytest.approx(float(out.energy[0]), abs=1e-12)
    assert atoms.get_potential_energies().sum() == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
    # no electronic entropy: the free energy (what ASE's optimisers ask for, force_consistent=True) is E
    assert atoms.get_potential_energy(force_consistent=True) == atoms.get_potential_energy()
    np.testing.assert_allclose(atoms.get_forces(), np.asarray(out.forces[: len(atoms)]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(atoms.get_stress(voigt=False), np.asarray(out.stress[0]), rtol=0, atol=1e-12)
