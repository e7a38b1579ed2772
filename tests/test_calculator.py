"""mlpot.Calculator inside ASE workflows; bounded compiles; clear errors."""

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk, fcc100
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_stress
from ase.calculators.lj import LennardJones
from ase.constraints import FixAtoms
from ase.filters import FrechetCellFilter
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS, FIRE
from conftest import ethanol, triclinic_si

from md.velocities import maxwell_boltzmann
from mlpot import Calculator, InputError, ModelConfig, Potential
from mlpot.graph import neighbour_pairs


@pytest.fixture(scope="module")
def lj_argon():
    """Argon LJ: a potential with a known minimum, so relaxations have a real target."""
    config = ModelConfig("lennard_jones", 6.0, (18,), {"sigma": 3.4, "epsilon": 0.0104}, dtype="float64")
    return Potential.create(config)


def argon_box(seed=0):
    atoms = bulk("Ar", "fcc", 5.4, cubic=True) * (2, 2, 2)
    atoms.rattle(0.1, seed=seed)
    return atoms


def test_bfgs_and_fire_relax_with_constraint(lj_argon):
    for optimizer in (BFGS, FIRE):
        atoms = argon_box()
        atoms.set_constraint(FixAtoms(indices=[0]))
        fixed = atoms.positions[0].copy()
        atoms.calc = Calculator(lj_argon)
        e0 = atoms.get_potential_energy()
        assert optimizer(atoms, logfile=None).run(fmax=1e-3, steps=300)
        assert atoms.get_potential_energy() < e0
        assert np.abs(atoms.get_forces()).max() < 1e-3
        np.testing.assert_array_equal(atoms.positions[0], fixed)


def test_cell_relaxation_reaches_zero_stress(lj_argon):
    atoms = argon_box()
    atoms.calc = Calculator(lj_argon)
    assert BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-4, steps=300)
    assert np.abs(atoms.get_stress()).max() < 1e-5

    # The target from ASE's own LennardJones (same sigma, epsilon, 6 Å cutoff, truncated): the
    # zero of its pressure in the lattice constant of perfect fcc, by bisection. About 3.78 Å
    # nearest-neighbour distance, not 2^(1/6) sigma = 3.82 (the truncated tail shifts it); a rel. 2e-4 is 0.001 Å.
    def pressure(a):
        crystal = bulk("Ar", "fcc", a, cubic=True)
        crystal.calc = LennardJones(sigma=3.4, epsilon=0.0104, rc=6.0, smooth=False)
        return -np.trace(crystal.get_stress(voigt=False)) / 3

    low, high = 5.2, 5.6  # compressed (P > 0) and stretched (P < 0)
    for _ in range(50):
        low, high = ((low + high) / 2, high) if pressure((low + high) / 2) > 0 else (low, (low + high) / 2)
    lattice = (4 * atoms.get_volume() / len(atoms)) ** (1 / 3)  # of the relaxed box, atoms back on sites
    assert lattice == pytest.approx((low + high) / 2, rel=2e-4)


def test_ase_md_compiles_a_bounded_number_of_times(painn64):
    atoms = triclinic_si(repeat=(2, 2, 2))
    calc = Calculator(painn64)
    atoms.calc = calc
    maxwell_boltzmann(atoms, 600, seed=0)
    VelocityVerlet(atoms, 1.0 * units.fs).run(30)
    Langevin(
        atoms, 1.0 * units.fs, temperature_K=600, friction=0.01 / units.fs, fixcm=False, rng=np.random.default_rng(1)
    ).run(30)
    atoms.get_stress()
    # one program for energy+forces+stress (periodic); edge capacity has 20% headroom
    assert calc.compile_count <= 2


def test_a_new_calculator_of_the_same_model_compiles_nothing_new(painn64, tmp_path):
    # One Calculator per structure (a common ASE pattern) used to build its own jit: a full
    # recompile for each (2.4 s per ethanol frame against 2 ms).
    first, second = ethanol(), ethanol()
    first.calc = Calculator(painn64)
    first.get_forces()
    painn64.save(tmp_path / "same.mlpot")
    for calc in (Calculator(painn64), Calculator(tmp_path / "same.mlpot")):  # the object, or a file of it
        second.calc = calc
        second.positions += 0.01
        second.get_forces()
        assert calc.compile_count == 0
    np.testing.assert_allclose(second.get_forces(), Calculator(painn64).get_forces(second), atol=1e-12)


def _backend_compiles():
    """A list that grows by one for every XLA compilation in the process from now on."""
    import jax

    seen = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: (
            seen.append(event) if event == "/jax/core/compile/backend_compile_duration" else None
        )
    )
    return seen


def test_structures_of_new_atom_counts_run_on_the_compiled_program(painn64):
    # A device-side slice [:n] of the padded forces compiled a program per new atom count (0.2-0.4 s
    # each), which compile_count did not see.
    crystal = triclinic_si(repeat=(2, 2, 2))
    calc = Calculator(painn64)
    crystal.calc = calc
    crystal.get_forces()
    compiles = _backend_compiles()
    for n in range(1, 5):  # vacancies: fewer atoms and edges, inside the capacity the crystal set
        smaller = crystal[n:]
        smaller.calc = calc
        assert smaller.get_forces().shape == (len(crystal) - n, 3)
    assert compiles == [] and calc.compile_count <= 1


def test_calculators_of_one_model_take_a_program_another_compiled(painn64):
    # NEB gives each image its own calculator: an image a few edges short of a bucket boundary sized
    # its own, smaller program and compiled it.
    big = triclinic_si(repeat=(2, 2, 2))
    first = Calculator(painn64)
    big.calc = first
    big.get_forces()
    nodes, edges = first._capacity
    small = big[:-1]  # fewer edges: alone it would pick a smaller edge bucket
    alone = Calculator(painn64, edge_headroom=1.0)
    assert alone._capacities(len(small), 10) != (nodes, edges)  # a capacity of its own without the shared one...
    second = Calculator(painn64)
    small.calc = second
    small.get_forces()
    assert second._capacity == (nodes, edges) and second.compile_count == 0  # ...but it takes the compiled one
    tiny = Atoms("Si2", positions=[[0, 0, 0], [2.35, 0, 0]])  # far smaller: not padded to the crystal's size
    tiny.calc = Calculator(painn64)
    tiny.get_potential_energy()
    assert tiny.calc._capacity[0] < nodes
    with pytest.raises(ValueError, match="edge_headroom must be >= 1 and finite"):
        Calculator(painn64, edge_headroom=float("inf"))


def test_no_stress_for_a_molecule_or_a_cell_without_volume(painn64):
    molecule = ethanol()
    molecule.calc = Calculator(painn64)
    molecule.get_potential_energy()
    with pytest.raises(PropertyNotImplementedError, match="pbc FFF"):
        molecule.get_stress()
    sheet = triclinic_si()
    sheet.cell[2] = 0.0  # periodic in plane, no box: no volume to divide by
    sheet.pbc = (True, True, False)
    sheet.calc = Calculator(painn64)
    with pytest.raises(PropertyNotImplementedError, match="pbc TTF and a cell of volume 0 "):
        sheet.get_stress()
    flat = sheet.copy()  # a third vector in the plane: nonzero, so of "rank 3" to ASE, but no volume
    flat.cell[2] = flat.cell[0]
    flat.calc = Calculator(painn64)
    assert np.isfinite(flat.get_potential_energy())
    with pytest.raises(PropertyNotImplementedError, match="three independent vectors"):
        flat.get_stress()  # was all zeros


def _slab(pbc) -> Atoms:
    slab = triclinic_si((2, 2, 2), seed=7)
    slab.center(vacuum=3.0, axis=2)  # a 6 Å gap, over the 4 Å cutoff: images across it do not meet
    slab.pbc = pbc
    return slab


def test_a_slab_has_the_stress_of_its_box(painn64):
    """Periodic in plane only, the stress is (1/V) dE/dε of the box (ASE's finite differences), and the
    same as with the box made periodic across the gap, which is what a plane-wave code computes."""
    slab = _slab((True, True, False))
    slab.calc = Calculator(painn64)
    stress = slab.get_stress()
    np.testing.assert_allclose(stress, calculate_numerical_stress(slab, eps=1e-5), atol=1e-8)
    assert np.abs(stress).max() > 1e-3  # a real stress, not zeros
    boxed = _slab((True, True, True))
    boxed.calc = Calculator(painn64)
    np.testing.assert_allclose(stress, boxed.get_stress(), atol=1e-12)
    wire = _slab((True, False, False))  # along one axis: the same box, other neighbours
    wire.calc = Calculator(painn64)
    np.testing.assert_allclose(wire.get_stress(), calculate_numerical_stress(wire, eps=1e-5), atol=1e-8)


def test_a_slab_relaxes_its_lattice_in_plane_only(lj_argon):
    """A 2-D material's routine: FrechetCellFilter with the out-of-plane strains masked. The in-plane
    stress goes to zero, the box height stays, and the normal stress, the relaxed atoms' own virial, is zero."""
    atoms = fcc100("Ar", size=(2, 2, 3), a=5.4, vacuum=6.0)  # pbc T T F
    atoms.rattle(0.05, seed=2)
    height = atoms.cell[2].copy()
    area = np.linalg.norm(np.cross(atoms.cell[0], atoms.cell[1]))
    atoms.calc = Calculator(lj_argon)
    cell_filter = FrechetCellFilter(atoms, mask=[1, 1, 0, 0, 0, 1])
    assert BFGS(cell_filter, logfile=None).run(fmax=1e-4, steps=500)
    stress = atoms.get_stress()  # xx yy zz yz xz xy
    assert np.abs(stress[[0, 1, 5]]).max() < 1e-5
    assert abs(stress[2]) < 1e-5 and np.abs(stress[[3, 4]]).max() < 1e-5
    np.testing.assert_allclose(atoms.cell[2], height, atol=1e-12)
    assert np.linalg.norm(np.cross(atoms.cell[0], atoms.cell[1])) < 0.99 * area  # 5.4 Å is stretched: it shrank


def test_unknown_element_named(painn64):
    atoms = Atoms("FeH", positions=[[0, 0, 0], [1.5, 0, 0]])
    atoms.calc = Calculator(painn64)
    with pytest.raises(InputError, match=r"\['Fe'\]"):
        atoms.get_potential_energy()


def test_atoms_on_top_of_each_other_are_refused(painn64):
    atoms = ethanol()
    atoms.positions[1] = atoms.positions[0]
    atoms.calc = Calculator(painn64)
    with pytest.raises(InputError, match="atoms 0 and 1 are on top of each other"):
        atoms.get_potential_energy()


class _NaNForces:
    """A compiled predict whose forces (or stress) are NaN while its energy is finite: what a float32
    network gives for two atoms ~1e-6 Å apart, where its gradients overflow."""

    def __init__(self, predict, field):
        self.predict, self.field = predict, field

    def _cache_size(self):
        return self.predict._cache_size()

    def __call__(self, params, graph):
        out = self.predict(params, graph)
        return out._replace(**{self.field: getattr(out, self.field) * np.nan})


@pytest.mark.parametrize("field", ["forces", "stress"])
def test_non_finite_forces_or_stress_are_refused_not_returned(painn64, field):
    atoms = triclinic_si() if field == "stress" else ethanol()
    calc = Calculator(painn64)
    calc._predict = [{flag: _NaNForces(f, field) for flag, f in fns.items()} for fns in calc._predict]
    atoms.calc = calc
    with pytest.raises(FloatingPointError, match=f"mlpot.Calculator: the model returned non-finite {field}"):
        atoms.get_forces()


def test_nan_positions_and_empty_atoms(painn64):
    atoms = ethanol()
    atoms.positions[2, 1] = np.nan
    atoms.calc = Calculator(painn64)
    with pytest.raises(InputError, match=r"NaN or inf for atom\(s\) \[2\]"):
        atoms.get_potential_energy()
    empty = Atoms()
    empty.calc = Calculator(painn64)
    with pytest.raises(InputError, match="no atoms"):
        empty.get_potential_energy()


def test_calculator_loads_model_file(painn64, tmp_path):
    path = tmp_path / "m.mlpot"
    painn64.save(path)
    a, b = ethanol(), ethanol()
    a.calc, b.calc = Calculator(painn64), Calculator(str(path))
    assert a.get_potential_energy() == b.get_potential_energy()
    assert Calculator.implemented_properties[:5] == ("energy", "free_energy", "forces", "stress", "energies")


def test_a_keyword_the_calculator_would_ignore_is_refused(painn64):
    # stored in calc.parameters and ignored, the model would run at its own cutoff and dtype
    with pytest.raises(TypeError, match=r"takes no parameters \(cutoff, dtype\)"):
        Calculator(painn64, dtype="float64", cutoff=3.0)
    calc = Calculator(painn64, label="run", directory=".")  # ASE's own keywords still work
    with pytest.raises(TypeError, match=r"takes no parameters \(cutoff\)"):
        calc.set(cutoff=3.0)


def test_atoms_with_the_calculator_pickle_and_compute_the_same(painn64):
    # multiprocessing over Atoms that carry it: the compiled functions are rebuilt, not pickled
    import pickle

    atoms = ethanol()
    atoms.calc = Calculator(painn64)
    energy = atoms.get_potential_energy()
    copy = pickle.loads(pickle.dumps(atoms))
    copy.positions[0] += 0.01
    moved = atoms.copy()
    moved.positions[0] += 0.01
    moved.calc = Calculator(painn64)
    assert copy.get_potential_energy() == moved.get_potential_energy() != energy


def test_float32_positions_and_sums_are_refused_not_returned(painn64):
    import jax

    atoms = ethanol()
    atoms.calc = Calculator(painn64)
    jax.config.update("jax_enable_x64", False)  # another library's doing, after import mlpot
    try:
        with pytest.raises(RuntimeError, match="jax_enable_x64 was switched off after importing mlpot"):
            atoms.get_potential_energy()
        with pytest.raises(RuntimeError, match="Potential.predict: jax_enable_x64 was switched off"):
            painn64.predict(atoms)
        from mlpot.training.evaluation import evaluate_files  # mlpot eval's scores: float32 sums before

        with pytest.raises(RuntimeError, match="mlpot evaluation: jax_enable_x64 was switched off"):
            evaluate_files(painn64, "no-such-file.xyz")  # refused before reading anything
    finally:
        jax.config.update("jax_enable_x64", True)
    assert np.isfinite(atoms.get_potential_energy())


def test_a_model_in_its_own_dtype_again_compiles_nothing_new(painn64, tmp_path):
    """with_dtype gave numpy parameters, which jit compiles apart from a loaded model's device arrays:
    the README's float64 recipe compiled every program twice."""
    import mlpot

    painn64.save(tmp_path / "model.mlpot")
    loaded = mlpot.load(tmp_path / "model.mlpot")
    crystal = triclinic_si(repeat=(2, 1, 1))
    crystal.calc = Calculator(loaded)
    crystal.get_forces()
    compiles = _backend_compiles()
    again = loaded.with_dtype(loaded.config.dtype)
    crystal.calc = Calculator(again)
    crystal.positions += 0.01
    crystal.get_forces()
    assert crystal.calc.compile_count == 0 and compiles == []


def test_a_far_smaller_structure_is_not_padded_to_the_largest_one_seen(lj_argon):
    # An E-V scan of the primitive cell after a supercell ran at the supercell's padded size (~3x the cost
    # for LJ, far more for a MACE), since the capacity only grew.
    calc = Calculator(lj_argon)
    big = bulk("Ar", "fcc", 5.4, cubic=True) * (5, 5, 5)
    small = bulk("Ar", "fcc", 5.4)
    for atoms in (big, small):
        atoms.calc = calc
    big.get_potential_energy()
    large = calc._capacity
    small.get_potential_energy()
    assert calc._capacity[0] * 4 < large[0] and calc._capacity[1] * 4 < large[1]
    alone = Calculator(lj_argon)
    small.calc = alone
    assert calc._capacity == alone._capacities(len(small), len(neighbour_pairs(small, 6.0)[0]))
    compiled = calc.compile_count
    for atoms in (big, small, big):  # each size keeps its program: alternating compiles nothing new
        atoms.calc = calc
        atoms.positions[0] += 0.01
        atoms.get_potential_energy()
    assert calc.compile_count == compiled
    inside = big[:-8]  # a few atoms fewer: the supercell's capacity still fits and stays
    inside.calc = calc
    inside.get_potential_energy()
    assert calc._capacity == large


def test_a_single_model_does_not_advertise_committee_properties(painn64, monkeypatch):
    # ASE's get_property reran the whole calculation for an advertised name missing from the results
    calc = Calculator(painn64)
    assert "energy_std" not in calc.implemented_properties and "forces_std" not in calc.implemented_properties
    assert "energy_std" in Calculator.implemented_properties  # a committee's calculator has them
    atoms = ethanol()
    atoms.calc = calc
    atoms.get_forces()
    calls = []
    real = calc.calculate
    monkeypatch.setattr(calc, "calculate", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    for name in ("energy_std", "forces_std"):
        with pytest.raises(PropertyNotImplementedError):
            calc.get_property(name, atoms)
    assert calls == []
