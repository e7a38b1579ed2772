"""The MD engine against ASE, neighbour-list skin and overflow, restart, safety stops."""

import ase.io
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.nose_hoover_chain import MTKNPT as AseMTK
from ase.md.nose_hoover_chain import IsotropicMTKNPT as AseIsotropicMTK
from ase.md.nose_hoover_chain import NoseHooverChainNVT as AseNoseHoover
from ase.md.verlet import VelocityVerlet as AseVelocityVerlet
from conftest import pair_set, small_painn, triclinic_si

import md
import mlpot
from md.forces import fixed_forces, potential_forces
from md.integrators import params
from md.io import TrajectoryWriter, frame_atoms, load_restart, save_restart
from md.loop import Reference, needs_rebuild
from md.simulation import MDError, Simulation
from md.toy import ARGON, argon_crystal, argon_potential, harmonic_force_fn, smooth_argon_forces, smooth_lennard_jones
from mlpot import physics
from mlpot.graph import build_graph, neighbour_pairs


def _record(dyn, frames):
    atoms = dyn.atoms
    return lambda: frames.append((atoms.get_positions().copy(), atoms.get_momenta().copy(), atoms.cell.array.copy()))


@pytest.mark.parametrize("ensemble", ["nve", "nose-hoover", "npt-mtk", "npt-mtk-cell"])
def test_engine_matches_ase_step_by_step(ensemble):
    # Same potential (float64 LJ model through mlpot.Calculator), same start: ASE's drivers
    # recompute neighbours each step with the exact cutoff, ours use a skin list on the device.
    # Both are the same algorithm in float64, so after 100 steps they agree to round-off.
    potential = argon_potential(6.5)
    start = argon_crystal(2, temperature_K=80.0, seed=4)
    masses = start.get_masses()
    masses[1::2] = 83.798  # two masses (krypton's on every other atom): each p^2 must be weighed by its own
    start.set_masses(masses)
    dt, tdamp, temperature = 5 * units.fs, 100 * units.fs, 60.0
    ours, theirs = start.copy(), start.copy()
    ours.calc, theirs.calc = mlpot.Calculator(potential), mlpot.Calculator(potential)
    if ensemble == "nve":
        dyn, ref = md.VelocityVerlet(ours, dt, skin=1.0), AseVelocityVerlet(theirs, dt)
    elif ensemble == "nose-hoover":
        dyn = md.NoseHooverChainNVT(ours, dt, temperature_K=temperature, tdamp=tdamp)
        ref = AseNoseHoover(theirs, dt, temperature_K=temperature, tdamp=tdamp)
    else:  # 0.05 GPa against a start near 0.2 GPa: the box grows by 14 % in 100 steps
        npt = {"temperature_K": temperature, "pressure_au": 0.05 * units.GPa, "tdamp": tdamp, "pdamp": 500 * units.fs}
        if ensemble == "npt-mtk":
            dyn, ref = md.IsotropicMTKNPT(ours, dt, **npt), AseIsotropicMTK(theirs, dt, **npt)
        else:  # a sheared start, so the cell's shape moves too
            for atoms in (ours, theirs):
                atoms.set_cell(atoms.cell.array + [[0, 0, 0], [0.4, 0, 0], [0, -0.3, 0]], scale_atoms=True)
            dyn, ref = md.MTKNPT(ours, dt, **npt), AseMTK(theirs, dt, **npt)
            # ASE's chain counts 9 cell components; the symmetric cell momentum has 6 (md.MTKNPT's count)
            ref._barostat._cell_dof = 6
            ref._barostat._R[0] = 6 * units.kB * temperature * npt["pdamp"] ** 2
    got, want = [], []
    dyn.attach(_record(dyn, got), 10)
    ref.attach(_record(ref, want), 10)
    dyn.run(100)
    ref.run(100)
    assert len(got) == len(want) == 11
    for (p1, m1, c1), (p2, m2, c2) in zip(got, want):
        np.testing.assert_allclose(p1, p2, rtol=0, atol=1e-10)
        np.testing.assert_allclose(m1, m2, rtol=0, atol=1e-10)
        np.testing.assert_allclose(c1, c2, rtol=0, atol=1e-10)
    if ensemble.startswith("npt-mtk"):
        assert ours.get_volume() > 1.1 * start.get_volume()  # the cell really moved
    if ensemble != "nve":  # ASE's thermostatted classes report it; for NVE it is the total energy
        assert dyn.get_conserved_energy() == pytest.approx(ref.get_conserved_energy(), abs=1e-9)
    assert {k: dyn.todict()[k] for k in ("type", "md-type")} == {k: ref.todict()[k] for k in ("type", "md-type")}
    assert dyn.get_number_of_steps() == ref.get_number_of_steps() == 100
    assert ours.get_potential_energy() == pytest.approx(theirs.get_potential_energy(), abs=1e-10)
    assert dyn.compile_count <= 1


@pytest.mark.parametrize(
    "atoms",
    [
        triclinic_si(),
        Atoms("Si2", [[0, 0, 0], [1.1, 0.9, 0.7]], cell=[[2.3, 0, 0], [0.5, 2.4, 0], [0.2, 0.3, 2.2]], pbc=True),
    ],
    ids=["triclinic", "tiny_cell"],
)
def test_md_force_fn_equals_a_fresh_prediction(atoms):
    """The engine's force_fn (half skin list, active pairs compacted and mirrored on the device, the
    MD state's positions placed in) gives Potential.predict's energy, forces and stress on a full
    list, also where atoms neighbour their own images; and again after the atoms move inside the skin."""
    potential = small_painn((14,), cutoff=4.0, seed=1)  # nonzero biases: a term acting past the cutoff would show
    forces = potential_forces(potential, atoms, skin=0.5, compute_stress=True)
    args = forces.build(atoms.positions, atoms.cell.array)
    for seed in range(50):  # moves < skin/2 (no rebuild) that take some pair across the cutoff
        moved = atoms.copy()
        step = np.random.default_rng(seed).normal(0, 0.3, moved.positions.shape)
        moved.positions += step * np.minimum(1, 0.24 / np.linalg.norm(step, axis=1, keepdims=True))
        if pair_set(*neighbour_pairs(moved, 4.0)) != pair_set(*neighbour_pairs(atoms, 4.0)):
            break
    assert pair_set(*neighbour_pairs(moved, 4.0)) != pair_set(*neighbour_pairs(atoms, 4.0))  # compaction changed
    for frame in (atoms, moved):
        energy, f, stress = forces.force_fn(jnp.asarray(frame.positions), jnp.asarray(frame.cell.array), args)
        want = potential.predict(frame)
        assert float(energy) == pytest.approx(float(want.energy[0]), rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(f, want.forces[: len(frame)], rtol=0, atol=1e-10)
        np.testing.assert_allclose(stress, want.stress[0], rtol=0, atol=1e-10)
        assert np.abs(f).max() > 1e-3  # a real force to compare


def test_skin_list_trajectory_equals_rebuild_every_step():
    atoms = argon_crystal(3, temperature_K=120.0, seed=5)
    runs = []
    for every_step in (False, True):
        forces = smooth_argon_forces(atoms, skin=0.6)
        sim = Simulation(forces, atoms, "nve", params(dt=10 * units.fs), rebuild_every_step=every_step)
        sim.run(150)
        runs.append((np.asarray(sim.state.positions), np.asarray(sim.state.momenta), forces.neighbours.builds))
    (p1, m1, builds), (p2, m2, builds_every) = runs
    assert 3 <= builds < 40 and builds_every == 151  # the skin run really crossed rebuilds
    np.testing.assert_allclose(p1, p2, rtol=0, atol=1e-10)
    np.testing.assert_allclose(m1, m2, rtol=0, atol=1e-10)


def test_model_is_not_evaluated_for_steps_dropped_for_a_rebuild():
    # A candidate step whose positions already need a new list is dropped; its forces must not be
    # computed (one wasted model call per rebuild otherwise). Count the calls the device makes.
    atoms = argon_crystal(3, temperature_K=120.0, seed=5)
    base = smooth_argon_forces(atoms, skin=0.6)
    calls = []

    def counted(positions, cell, force_args):
        jax.debug.callback(lambda: calls.append(1))
        return base.force_fn(positions, cell, force_args)

    forces = base._replace(force_fn=counted, cache_key=("counted", id(counted)))
    sim = Simulation(forces, atoms, "nve", params(dt=10 * units.fs))
    sim.run(150)
    jax.effects_barrier()
    assert forces.neighbours.builds >= 3  # rebuilds happened...
    assert len(calls) == 1 + 150  # ...yet only the start and the 150 accepted steps ran the model


SHEAR = np.eye(3) + 0.05 * np.outer([1, 0, 0], [0, 1, 0])  # volume kept: a criterion on volume alone misses it


@pytest.mark.parametrize(
    "deformation", [np.eye(3), np.eye(3) * 0.98, SHEAR], ids=["constant cell", "isotropic 2 %", "shear 0.05"]
)
def test_rebuild_criterion_is_tight_and_never_misses_a_pair(deformation):
    # Displacements just below the criterion must leave every pair within the cutoff in the old
    # cutoff+skin list (checked by brute force); just above, the criterion must fire.
    atoms = argon_crystal(2, temperature_K=1.0)
    cutoff, skin = 6.5, 1.0
    listed = set(pair_set(*neighbour_pairs(atoms, cutoff + skin)))
    reference = Reference(jnp.asarray(atoms.positions), jnp.asarray(atoms.cell.array))
    rng = np.random.default_rng(0)
    direction = rng.normal(size=(len(atoms), 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    budget = (skin - (cutoff + skin) * np.linalg.norm(deformation - np.eye(3))) / 2  # largest |d| allowed
    for factor, fires in ((0.99, False), (1.01, True)):
        moved = atoms.copy()
        moved.set_cell(atoms.cell.array @ deformation, scale_atoms=True)
        moved.positions += factor * budget * direction
        flag = needs_rebuild(jnp.asarray(moved.positions), jnp.asarray(moved.cell.array), reference, cutoff, skin)
        assert bool(flag) == fires
        if not fires:
            assert set(pair_set(*neighbour_pairs(moved, cutoff))) <= listed


def test_restart_continues_exactly(tmp_path):
    atoms = argon_crystal(2, temperature_K=80.0, seed=6)
    p = params(dt=10 * units.fs, kT=units.kB * 80, friction=0.02 / units.fs)
    straight = Simulation(smooth_argon_forces(atoms), atoms, "langevin", p, seed=9)
    straight.run(80)
    first = Simulation(smooth_argon_forces(atoms), atoms, "langevin", p, seed=9)
    first.run(37)
    path = tmp_path / "run.restart"
    save_restart(path, "langevin", first.state, p, first.reference, first.neighbours.capacity, atoms.numbers)
    data = load_restart(path)
    forces = smooth_argon_forces(atoms, capacity=data["capacity"])
    second = Simulation(forces, atoms, "langevin", data["params"], restart=data)
    second.run(43)
    assert int(second.state.step) == 80
    for field in ("positions", "momenta", "chain_momenta", "key"):
        a, b = np.asarray(getattr(second.state, field)), np.asarray(getattr(straight.state, field))
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10, err_msg=field)
    # Version-1 files counted directed edges (twice the pairs; the earliest held the skin list's
    # number alone): both resume the same run, the first with the capacities this one had.
    arrays = {k: v for k, v in np.load(path).items() if k != "state_mobile"}  # before fixed atoms: all move
    directed = 2 * np.asarray(data["capacity"])
    for name, capacity in (("v1.npz", directed), ("v1_single.npz", directed[:1])):
        np.savez(tmp_path / name, **{**arrays, "version": np.asarray(1), "capacity": capacity})
        old = load_restart(tmp_path / name)
        forces = smooth_argon_forces(atoms, capacity=old["capacity"])
        resumed = Simulation(forces, atoms, "langevin", old["params"], restart=old)
        resumed.run(43)
        np.testing.assert_allclose(resumed.state.positions, straight.state.positions, rtol=0, atol=1e-10)
        if name == "v1.npz":
            assert resumed.neighbours.capacity == first.neighbours.capacity


def _planted_nan(positions, cell, force_args):
    """Harmonic wells, but the energy is NaN once atom 0 passes x = x0 + 0.25 Å (a planted fault)."""
    energy, forces, stress = harmonic_force_fn(positions, cell, force_args)
    bad = positions[0, 0] > force_args[0][0, 0] + 0.25
    return jnp.where(bad, jnp.nan, energy), forces, stress


def test_planted_blow_up_stops_with_the_step_and_keeps_the_trajectory(tmp_path):
    atoms = argon_crystal(1)
    centres = atoms.positions.copy()
    momenta = np.zeros((len(atoms), 3))
    momenta[0, 0] = 0.5 * 39.948 * 0.3 / 10 / units.fs  # crosses +0.25 Å within ~ a quarter period
    atoms.set_momenta(momenta)
    sim = Simulation(fixed_forces(_planted_nan, (centres, 0.05)), atoms, "nve", params(dt=2 * units.fs))
    path = tmp_path / "blow.xyz"
    writer = TrajectoryWriter(path)
    sim.attach(lambda s: writer.write(frame_atoms(atoms, s.state, False)), 3)
    with pytest.raises(MDError, match=r"step (\d+): energy, positions or momenta became NaN") as err:
        sim.run(500)
    writer.close()
    bad_step = int(err.value.args[0].split("step ")[1].split(":")[0])
    assert int(sim.state.step) == bad_step - 1 and np.isfinite(float(sim.state.energy))
    frames = ase.io.read(path, ":")
    assert [f.info["step"] for f in frames] == list(range(3, bad_step, 3))
    assert float(sim.state.positions[0, 0]) <= centres[0, 0] + 0.25  # the kept state is the last good one


def test_atoms_closer_than_the_minimum_distance_stop_the_run():
    atoms = argon_crystal(2, temperature_K=1.0)
    neighbour = np.argsort(np.linalg.norm(atoms.positions[1:] - atoms.positions[0], axis=1))[0] + 1
    push = atoms.positions[neighbour] - atoms.positions[0]
    momenta = atoms.get_momenta()
    momenta[0] = push / np.linalg.norm(push) * np.sqrt(2 * 39.948 * 0.5)  # 0.5 eV head-on
    atoms.set_momenta(momenta)
    sim = Simulation(smooth_argon_forces(atoms), atoms, "nve", params(dt=5 * units.fs), min_distance=3.0)
    with pytest.raises(MDError, match="closer than 3.0") as error:
        sim.run(200)
    pair = sorted((0, int(neighbour)))
    assert f"atoms {pair[0]} (Ar) and {pair[1]} (Ar)" in str(error.value)  # names the colliding pair


def test_atoms_that_the_run_merges_stop_it_as_a_failed_run_not_a_bad_input():
    # with the distance check off, two atoms with no forces between them fly onto one point at step 10;
    # the rebuild refuses the pair: an MDError of the run (exit 1, last frame kept), not an InputError
    from md.forces import graph_forces

    def no_energy(params, vectors, graph):
        return jnp.zeros(graph.species.shape[0], vectors.dtype)

    atoms = Atoms("Ar2", positions=[[-0.1, 0.0, 0.0], [0.1, 0.0, 0.0]])
    speed = 0.01 / units.fs  # Å per ASE time unit: 0.01 Å per 1-fs step (~1,600 K)
    atoms.set_momenta(np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]) * speed * atoms.get_masses()[:, None])
    forces = graph_forces(no_energy, {}, 3.0, (18,), atoms, cache_key=("no_energy",))
    sim = Simulation(forces, atoms, "nve", params(dt=1.0 * units.fs), min_distance=0.0, rebuild_every_step=True)
    with pytest.raises(
        MDError,
        match=r"MD stopped at step 10: MD neighbour list \(build \d+\): atoms 0 and 1 are on "
        r"top of each other.*the run brought them together",
    ) as error:
        sim.run(20)
    assert not isinstance(error.value, ValueError) and int(sim.state.step) == 10


def test_an_initial_structure_with_atoms_too_close_is_refused_at_the_start():
    # The first force evaluation is checked like a step: the error names the pair, not a later step.
    atoms = argon_crystal(2, temperature_K=1.0)
    atoms.positions[5] = atoms.positions[0] + [0.4, 0.0, 0.0]
    with pytest.raises(MDError, match=r"cannot start.*closer than 0.5 Å.*atoms 0 \(Ar\) and 5 \(Ar\) at 0.400"):
        Simulation(smooth_argon_forces(atoms), atoms, "nve", params(dt=5 * units.fs), min_distance=0.5)


def test_a_step_that_outruns_the_skin_blames_the_cell_or_the_atoms_whichever_used_it():
    # An MTK barostat far too fast for its pressure (3 GPa on argon at 0, taup 60 fs) strains the cell
    # by ~30 % in one step: the error must name the barostat, not advise a larger skin (useless here).
    atoms = argon_crystal(3, temperature_K=60)
    forces = smooth_argon_forces(atoms, skin=0.5, compute_stress=True)
    fast = params(dt=5 * units.fs, kT=60 * units.kB, tdamp=100 * units.fs, pressure=3 * units.GPa, taup=60 * units.fs)
    with pytest.raises(MDError, match=r"step 1: the cell changed too much in one step.*raise taup"):
        Simulation(forces, atoms, "npt-mtk", fast).run(1)
    # At constant cell, one atom thrown 0.8 Å in a step (> skin/2 = 0.25 Å): the atoms are to blame.
    thrown = argon_crystal(3, temperature_K=0.0)
    momenta = np.zeros((len(thrown), 3))
    momenta[0, 0] = 39.948 * 0.8 / (5 * units.fs)
    thrown.set_momenta(momenta)
    with pytest.raises(MDError, match=r"step 1: an atom moved more than skin/2 = 0.25 Å.*raise the skin"):
        Simulation(smooth_argon_forces(thrown, skin=0.5), thrown, "nve", params(dt=5 * units.fs)).run(1)


def _squeezed_argon():
    """Expanded argon (a = 6.0 Å) and Berendsen NPT settings that squeeze it at 2 GPa."""
    atoms = argon_crystal(2, lattice=6.0, temperature_K=60.0, seed=7)
    p = params(
        dt=5 * units.fs,
        kT=units.kB * 60,
        tdamp=200 * units.fs,
        pressure=2.0 * units.GPa,
        taup=250 * units.fs,
        compressibility=1 / (3.0 * units.GPa),
    )
    return atoms, p


def test_overflow_on_the_first_step_after_a_rebuild_grows_the_list():
    # With a rebuild before every step the active slots fit the pairs of that step with little to
    # spare, so a compression that brings more pairs inside the cutoff overflows on the first step
    # after a fresh rebuild. That must grow the list, not stop the run as if an atom had jumped
    # more than skin/2; the trajectory is the one a run with ample room from the start gives.
    atoms, p = _squeezed_argon()
    # cutoff 6 Å: a force model of its own, so the compiles counted by the test below stay its own
    tight = smooth_argon_forces(atoms, compute_stress=True, headroom=1.0, cutoff=6.0)
    sim = Simulation(tight, atoms, "npt", p, rebuild_every_step=True)
    sim.run(40)  # the first overflow comes at step 19
    assert tight.neighbours.growths >= 1
    roomy = smooth_argon_forces(atoms, compute_stress=True, capacity=tight.neighbours.capacity, cutoff=6.0)
    reference = Simulation(roomy, atoms, "npt", p)
    reference.run(40)
    np.testing.assert_allclose(np.asarray(sim.state.positions), np.asarray(reference.state.positions), atol=1e-10)


def test_a_start_whose_device_finds_more_pairs_than_the_host_grows_the_list(monkeypatch):
    # The host counts active pairs in float64 from the search's distances, the device from the
    # positions: a pair within rounding of the cutoff can be in one count and not the other. Here the
    # host is made to see no active pair at all, so the start's forces ask for more slots than the
    # list has. The start must grow the list and give the forces a roomy one gives, not stop.
    import md.forces

    atoms = argon_crystal(2, temperature_K=30.0, seed=2)
    roomy = smooth_argon_forces(atoms, cutoff=6.0)
    reference = Simulation(roomy, atoms, "nve", params(dt=5 * units.fs))
    real_search = md.forces.neighbour_search

    def host_sees_no_active_pair(*args, **kwargs):
        i, j, shifts, d = real_search(*args, **kwargs)
        return i, j, shifts, d + 10.0

    monkeypatch.setattr(md.forces, "neighbour_search", host_sees_no_active_pair)
    blind = smooth_argon_forces(atoms, cutoff=6.0, capacity=(roomy.neighbours.capacity[0], 0))
    sim = Simulation(blind, atoms, "nve", params(dt=5 * units.fs))
    assert blind.neighbours.builds == 2 and blind.neighbours.capacity[1] > reference.neighbours.num_active
    np.testing.assert_allclose(np.asarray(sim.state.forces), np.asarray(reference.state.forces), rtol=0, atol=1e-12)
    assert float(sim.state.energy) == pytest.approx(float(reference.state.energy), abs=1e-12)


def test_neighbour_capacity_overflow_grows_with_bounded_recompiles():
    # Berendsen NPT squeezes expanded argon (a = 6.0 Å) at 2 GPa to about half its volume: the
    # pairs within cutoff + skin (skin list, checked at host rebuilds; ~1.3x) and within the
    # cutoff (active slots, checked on the device every step; ~2.3x) outgrow their capacities
    # (headroom 1.0) mid-run. Each overflow drops the step, rebuilds bigger and resumes: one
    # recompile per growth, few in all (growth is x1.5 at least, so <= 1 + 2 growth events),
    # and the trajectory is the one a run with ample capacity from the start produces.
    atoms, p = _squeezed_argon()
    tight = smooth_argon_forces(atoms, compute_stress=True, headroom=1.0)
    sim = Simulation(tight, atoms, "npt", p)
    sim.run(200)
    compiles = sim.compile_count  # (the compiled chunk is shared: count before the second run)
    # Same final shape (no new compile), but ample from the start: never overflows.
    roomy = smooth_argon_forces(atoms, compute_stress=True, capacity=tight.neighbours.capacity)
    reference = Simulation(roomy, atoms, "npt", p)
    reference.run(200)
    assert 1 <= tight.neighbours.growths <= 4
    assert compiles == 1 + tight.neighbours.growths
    assert roomy.neighbours.growths == 0
    np.testing.assert_allclose(np.asarray(sim.state.positions), np.asarray(reference.state.positions), atol=1e-10)
    assert abs(np.linalg.det(np.asarray(sim.state.cell))) < 0.6 * atoms.get_volume()
    pressures = []
    sim.attach(lambda s: pressures.append(s.thermo()["pressure"]), 10)
    sim.run(100)  # Berendsen holds the mean pressure at the target (fluctuations ~0.05 GPa here)
    assert np.mean(pressures) == pytest.approx(2.0 * units.GPa, rel=0.05)
    # The barostat drives its own pressure(): check that number independently, at the squeezed cell.
    # Stress from a fresh graph of the final atoms (no MD-side placement: a stale volume shows), the
    # ideal-gas term from ASE's own get_stress(include_ideal_gas=True).
    final = sim.atoms()
    graph = build_graph(final, 6.5, (18,))
    fresh = physics.predict(smooth_lennard_jones(ARGON["sigma"], ARGON["epsilon"], 5.5, 6.5), {}, graph)
    np.testing.assert_allclose(np.asarray(sim.state.stress), np.asarray(fresh.stress[0]), rtol=1e-9, atol=1e-12)
    final.calc = SinglePointCalculator(final, energy=float(fresh.energy[0]), stress=np.asarray(fresh.stress[0]))
    ase_pressure = -np.trace(final.get_stress(voigt=False, include_ideal_gas=True)) / 3
    assert pressures[-1] == pytest.approx(ase_pressure, rel=1e-9)


def test_list_capacities_always_leave_room_and_a_headroom_below_one_is_refused():
    # The last skin-list edge must be padding (unused active slots point at it): a capacity equal to
    # the pair count would send one real pair to the model many times over.
    from md.forces import NeighbourList

    atoms = argon_crystal(2)
    neighbours = NeighbourList(5.0, (18,), atoms, skin=0.5, headroom=1.0)
    for count in range(1, 3000):
        assert neighbours._grow(0, count) > count and neighbours._grow(count, count) > count
    with pytest.raises(ValueError, match="headroom must be >= 1"):
        NeighbourList(5.0, (18,), atoms, skin=0.5, headroom=0.95)
    with pytest.raises(ValueError, match="edge_headroom must be >= 1"):
        mlpot.Calculator(argon_potential(), edge_headroom=0.5)


def test_ctrl_c_during_a_traj_frame_finishes_the_frame_first(tmp_path, monkeypatch):
    # ASE writes a .traj frame in several calls (info, with the step, last) and saves a half frame on
    # close: the interrupt waits for the frame, then stops the run as Ctrl-C does.
    import os
    import signal

    from ase.io.trajectory import TrajectoryWriter as AseWriter

    atoms = argon_crystal(1)
    state = Simulation(smooth_argon_forces(atoms), atoms, "nve", params(dt=2 * units.fs)).state
    writer = TrajectoryWriter(tmp_path / "t.traj")
    writer.write(frame_atoms(atoms, state, False))
    writer.sync()  # on disk (what mlpot md does before each restart file)
    real_write = AseWriter.write

    def interrupted_write(self, atoms=None, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # arrives inside the frame's write
        return real_write(self, atoms, **kwargs)

    monkeypatch.setattr(AseWriter, "write", interrupted_write)
    # Python's own Ctrl-C handler, whatever this process inherited: a shell's `make test &` starts it
    # with SIGINT ignored, and the deferred interrupt then (rightly) does nothing
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            writer.write(frame_atoms(atoms, state._replace(step=state.step + 1), False))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)
    writer.close()
    frames = ase.io.read(tmp_path / "t.traj", ":")
    assert [f.info["step"] for f in frames] == [0, 1]
    assert all(f.get_potential_energy() == pytest.approx(float(state.energy)) for f in frames)


def test_appending_to_a_trajectory_whose_last_frame_has_no_step_is_refused(tmp_path):
    ase.io.write(tmp_path / "foreign.xyz", argon_crystal(1))
    with pytest.raises(ValueError, match="its last frame has no step"):
        TrajectoryWriter(tmp_path / "foreign.xyz", append=True)


def test_compiled_md_programs_are_bounded_and_the_recent_ones_kept(monkeypatch):
    """One program per model: an active-learning loop runs MD with a new model each round, and kept
    programs would pile up (~15 MB each for a small PaiNN)."""
    from types import SimpleNamespace

    from md import simulation

    monkeypatch.setattr(simulation, "_COMPILED", {})

    def forces(k):
        return SimpleNamespace(force_fn=lambda *a: None, check_fn=lambda *a: None, cache_key=("model", k))

    first = forces(0)
    program = simulation._compiled("nve", first, 1)
    for k in range(1, 3 * simulation.COMPILED_SIZE):
        simulation._compiled("nve", forces(k), 1)
        assert simulation._compiled("nve", first, 1) is program  # in use, so never the one dropped
    assert len(simulation._COMPILED) == simulation.COMPILED_SIZE


def test_one_energy_function_at_two_cutoffs_runs_each_at_its_own():
    """The cutoff is compiled into the step (which pairs count): a shared program keyed without it gave
    the second simulation the first one's cutoff, silently."""
    from md.forces import graph_forces

    atoms = argon_crystal(2, temperature_K=60, seed=1)

    def start_energy(energy_fn, cutoff):
        forces = graph_forces(energy_fn, {}, cutoff, (18,), atoms, skin=0.5)
        return float(Simulation(forces, atoms, "nve", params(dt=units.fs)).state.energy)

    def new_energy_fn():  # a new function object: programs of its own
        return smooth_lennard_jones(ARGON["sigma"], ARGON["epsilon"], 5.5, 6.5)

    alone = start_energy(new_energy_fn(), 6.5)
    shared = new_energy_fn()
    short = start_energy(shared, 4.0)
    assert start_energy(shared, 6.5) == pytest.approx(alone, rel=1e-12)
    assert abs(short - alone) > 0.1  # the pairs between 4 and 6.5 Å hold a quarter of an eV


@pytest.mark.parametrize("mass", [0.0, -39.948, np.nan])
def test_a_mass_that_is_not_positive_is_refused_by_atom(mass):
    atoms = argon_crystal(2, temperature_K=60, seed=1)
    masses = atoms.get_masses()
    masses[3] = mass
    atoms.set_masses(masses)
    with pytest.raises(ValueError, match=r"atom\(s\) \[3\] have mass"):
        Simulation(smooth_argon_forces(atoms), atoms, "nve", params(dt=units.fs))


def test_an_edit_that_breaks_the_run_is_blamed_on_the_edit_and_its_step():
    atoms = argon_crystal(2, temperature_K=60, seed=1)
    atoms.calc = mlpot.Calculator(argon_potential(6.5))
    dyn = md.VelocityVerlet(atoms, 2 * units.fs)

    def heat():
        if dyn.nsteps == 6:
            atoms.set_momenta(atoms.get_momenta() * 30)

    dyn.attach(heat, 3)
    with pytest.raises(MDError, match="MD cannot go on from step 6: in the atoms as edited") as err:
        dyn.run(20)
    assert "initial structure" not in str(err.value) and "temperature exceeded" in str(err.value)
