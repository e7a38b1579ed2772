"""Integrators driven by analytic force functions (no ML): exact solutions and ensemble averages."""

import itertools

import jax
import numpy as np
import pytest
from ase import Atoms, units

import mlpot  # noqa: F401  (x64)
from md.forces import fixed_forces
from md.integrators import params
from md.simulation import Simulation
from md.toy import argon_crystal, harmonic_force_fn, smooth_argon_forces
from md.velocities import mobility, moving_degrees_of_freedom, thermal_start


def oscillators(n, mass=12.0, seed=0):
    rng = np.random.default_rng(seed)
    atoms = Atoms(f"C{n}", positions=rng.uniform(0, 10, (n, 3)), masses=np.full(n, mass))
    return atoms


def test_velocity_verlet_matches_the_exact_discrete_harmonic_solution():
    # For x'' = -w^2 x with x0 = A, p0 = 0, velocity Verlet gives exactly x_n = A cos(n W dt)
    # with cos(W dt) = 1 - (w dt)^2 / 2: a closed form for the whole discrete trajectory.
    atoms = oscillators(5)
    centres = atoms.positions.copy()
    amplitude = np.array([[0.3, 0.0, 0.0], [0.0, -0.2, 0.0], [0.1, 0.1, 0.1], [0.0, 0.0, 0.05], [0.0, 0.0, 0.0]])
    atoms.positions = centres + amplitude
    k, mass, dt = 2.0, 12.0, 2.0 * units.fs
    sim = Simulation(fixed_forces(harmonic_force_fn, (centres, k)), atoms, "nve", params(dt=dt))
    sim.run(500)
    omega = np.sqrt(k / mass)
    big_w = np.arccos(1 - (omega * dt) ** 2 / 2)
    expected = centres + amplitude * np.cos(500 * big_w)
    np.testing.assert_allclose(np.asarray(sim.state.positions), expected, atol=1e-11)


def _sample(sim, steps, every):
    rows = []
    sim.attach(lambda s: rows.append((s.thermo()["temperature"], float(s.state.energy))), every)
    sim.run(steps)
    return np.array(rows)


def test_langevin_samples_the_target_temperature_for_harmonic_oscillators():
    # 400 independent 3D oscillators (1200 degrees of freedom), w dt = 0.1, friction ~ w/2:
    # the kinetic temperature and <E_pot> = 3/2 N kT must both match the target. With ~100
    # decorrelated samples of 1200 dof, the standard error of the mean is ~0.4%; allow 3%.
    n, k, mass, target = 400, 1.0, 12.0, 300.0
    atoms = oscillators(n, mass)
    omega = np.sqrt(k / mass)
    dt = 0.1 / omega
    p = params(dt=dt, kT=units.kB * target, friction=0.5 * omega)
    sim = Simulation(fixed_forces(harmonic_force_fn, (atoms.positions.copy(), k)), atoms, "langevin", p, seed=1)
    sim.run(300)  # equilibrate from T = 0 (~10 damping times)
    rows = _sample(sim, 4000, 20)
    assert rows[:, 0].mean() == pytest.approx(target, rel=0.03)
    mean_epot_per_dof = rows[:, 1].mean() / (3 * n)
    assert mean_epot_per_dof == pytest.approx(0.5 * units.kB * target, rel=0.03)


def _species_temperatures(sim, groups):
    """Kinetic temperature of each group of atoms, from the momenta and each atom's own mass."""
    p = np.asarray(sim.state.momenta)
    m = sim.atoms().get_masses()
    return [np.sum(p[g] ** 2 / m[g][:, None]) / (3 * len(g) * units.kB) for g in groups]


def test_langevin_holds_each_mass_at_the_target_temperature():
    # H-like (1 amu) and O-like (16 amu) oscillators: a noise or friction that used one mass for all
    # (a mean, say) runs the light ones hot and the heavy ones cold, while the mean can still look right.
    n, k, target = 400, 1.0, 300.0
    atoms = oscillators(n)
    atoms.set_masses(np.where(np.arange(n) % 2 == 0, 1.0, 16.0))
    light, heavy = np.arange(0, n, 2), np.arange(1, n, 2)
    dt = 0.1  # omega dt = 0.1 for the light ones
    p = params(dt=dt, kT=units.kB * target, friction=0.5)
    sim = Simulation(fixed_forces(harmonic_force_fn, (atoms.positions.copy(), k)), atoms, "langevin", p, seed=2)
    sim.run(300)
    rows = []
    sim.attach(lambda s: rows.append(_species_temperatures(s, (light, heavy))), 20)
    sim.run(4000)
    t_light, t_heavy = np.mean(rows, axis=0)
    assert t_light == pytest.approx(target, rel=0.04) and t_heavy == pytest.approx(target, rel=0.04)


@pytest.mark.parametrize("ensemble", ["nose-hoover", "npt"])
def test_a_thermostat_holds_a_two_mass_crystal_at_the_target_temperature(ensemble):
    # Argon with every other atom at krypton's mass, from 120 K: the thermostat (a global scaling
    # that must weigh each p^2 by its own mass) brings the whole to the target and the interactions
    # share it out, so each mass reads the target. Berendsen NPT had no temperature test before.
    atoms = argon_crystal(3, temperature_K=120.0, seed=2)
    masses = atoms.get_masses()
    masses[1::2] = 83.798
    atoms.set_masses(masses)
    groups = (np.arange(0, len(atoms), 2), np.arange(1, len(atoms), 2))
    barostat = {"compressibility": 0.01 / units.GPa, "taup": 500 * units.fs} if ensemble == "npt" else {}
    p = params(dt=10 * units.fs, kT=units.kB * 80.0, tdamp=100 * units.fs, **barostat)
    sim = Simulation(smooth_argon_forces(atoms, compute_stress=ensemble == "npt"), atoms, ensemble, p)
    sim.run(600)
    rows = []
    sim.attach(lambda s: rows.append(_species_temperatures(s, groups)), 20)
    sim.run(2000)
    t_argon, t_krypton = np.mean(rows, axis=0)
    assert t_argon == pytest.approx(80.0, rel=0.07) and t_krypton == pytest.approx(80.0, rel=0.07)


def test_langevin_noise_depends_on_the_seed_and_is_reproducible():
    atoms = oscillators(5)
    forces = fixed_forces(harmonic_force_fn, (atoms.positions.copy(), 1.0))
    p = params(dt=units.fs, kT=units.kB * 300, friction=0.01 / units.fs)
    runs = []
    for seed in (3, 3, 4):
        sim = Simulation(forces, atoms, "langevin", p, seed=seed)
        sim.run(20)
        runs.append(np.asarray(sim.state.positions))
    assert np.array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_nose_hoover_chain_holds_temperature_and_conserves_its_extended_energy():
    # 108-atom smooth-LJ argon on perfect fcc sites with momenta drawn at 120 K: equipartition
    # alone would settle near 60-65 K, so the target is 100 K, which only a working thermostat
    # reaches. The NHC must bring the mean T to 100 K (3N = 324 dof: instantaneous T fluctuates by
    # sqrt(2/324) ~ 8%; the mean over ~60 frames spaced by ~a thermostat period is within ~3%;
    # allow 6%) and conserve E_pot + E_kin + E_chain (the integrator's shadow energy: drift << kT
    # per atom).
    atoms = argon_crystal(3, temperature_K=120.0, seed=2)
    tdamp = 100 * units.fs
    p = params(dt=10 * units.fs, kT=units.kB * 100.0, tdamp=tdamp)
    sim = Simulation(smooth_argon_forces(atoms), atoms, "nose-hoover", p)
    sim.run(400)
    rows = []
    sim.attach(lambda s: rows.append(s.thermo()), 20)
    sim.run(1600)
    temperatures = np.array([r["temperature"] for r in rows])
    conserved = np.array([r["conserved"] for r in rows])
    assert temperatures.mean() == pytest.approx(100.0, rel=0.06)
    assert np.ptp(conserved) < 0.02 * units.kB * 100 * len(atoms)


def test_nve_conserves_total_momentum_and_smooth_lj_energy():
    # Newton's third law holds pair by pair, so the total momentum stays zero to round-off
    # (1e-10 of the typical single-atom momentum). Smooth LJ (C2 switch) at dt = 5 fs: the
    # velocity-Verlet shadow energy wiggles by O(dt^2) and does not drift; bound the range of
    # E_tot over 2000 steps by 1e-4 eV per atom... in total: 2e-3 eV for 108 atoms (~3% of kT).
    atoms = argon_crystal(3, temperature_K=60.0, seed=3)
    sim = Simulation(smooth_argon_forces(atoms), atoms, "nve", params(dt=5 * units.fs))
    rows = []
    sim.attach(lambda s: rows.append((s.thermo()["etot"], np.asarray(s.state.momenta).sum(axis=0))), 50)
    sim.run(2000)
    etot = np.array([r[0] for r in rows])
    momentum = np.array([r[1] for r in rows])
    typical = np.sqrt(3 * units.kB * 60 * 39.948)
    assert np.abs(momentum).max() < 1e-10 * typical
    assert np.ptp(etot) < 2e-3
    half = len(etot) // 2  # no drift: the two halves have the same mean energy
    assert abs(etot[half:].mean() - etot[:half].mean()) < 5e-4
    assert sim.neighbours.builds > 3  # the run really crossed neighbour rebuilds


def test_parameters_are_arguments_so_changing_them_does_not_recompile():
    atoms = oscillators(5)
    forces = fixed_forces(harmonic_force_fn, (atoms.positions.copy(), 1.0))
    sims = [
        Simulation(forces, atoms, "langevin", params(dt=dt * units.fs, kT=units.kB * t, friction=f))
        for dt, t, f in ((1.0, 300, 0.01), (2.0, 10, 0.1))
    ]
    before = sims[0]._chunk._cache_size()
    for sim in sims:
        sim.run(5)
    assert sims[0]._chunk._cache_size() - before <= 1
    assert not np.allclose(sims[0].state.positions, sims[1].state.positions)
    assert jax.tree_util.tree_structure(sims[0].state) == jax.tree_util.tree_structure(sims[1].state)


def test_npt_refuses_forces_without_stress_and_nose_hoover_a_zero_kelvin_target():
    # An energy-only force model returns zero stress: the barostat would see only the ideal-gas
    # pressure and collapse the box (to 46 % in 1500 steps of 108-atom argon at 0.2 GPa) with no
    # sign of it. A 0 K Nosé-Hoover target has zero chain masses: NaN on the first step.
    atoms = argon_crystal(3, temperature_K=60.0, seed=1)
    npt = params(dt=5 * units.fs, kT=units.kB * 60.0, pressure=0.2 * units.GPa, compressibility=0.3 / units.GPa)
    with pytest.raises(ValueError, match="NPT needs the stress"):
        Simulation(smooth_argon_forces(atoms), atoms, "npt", npt)
    Simulation(smooth_argon_forces(atoms, compute_stress=True), atoms, "npt", npt)  # accepted
    with pytest.raises(ValueError, match="above 0 K"):
        Simulation(smooth_argon_forces(atoms), atoms, "nose-hoover", params(dt=5 * units.fs, kT=0.0))


def _argon13():
    """A 13-atom argon cuboctahedron (fcc centre and its 12 neighbours) in vacuum."""
    sites = [(0, 0, 0)] + [s for s in itertools.product((-1, 0, 1), repeat=3) if sorted(map(abs, s)) == [0, 1, 1]]
    return Atoms("Ar13", positions=np.array(sites) * 5.26 / 2)


def test_moving_degrees_of_freedom_subtract_what_the_ensemble_holds():
    crystal = argon_crystal(2, temperature_K=60.0, seed=0)  # periodic, zero net momentum
    assert moving_degrees_of_freedom(crystal, "nve") == 3 * 32 - 3
    assert moving_degrees_of_freedom(crystal, "langevin") == 0  # noise moves the centre of mass: 3N
    drifting = crystal.copy()
    drifting.set_momenta(crystal.get_momenta() + 1.0)
    assert moving_degrees_of_freedom(drifting, "nose-hoover") == 0
    cluster = _argon13()
    assert thermal_start(cluster, "nose-hoover", 20.0, seed=0) == 3 * 13 - 6
    np.testing.assert_allclose(cluster.get_angular_momentum(), 0.0, atol=1e-12)
    np.testing.assert_allclose(cluster.get_momenta().sum(axis=0), 0.0, atol=1e-12)
    spinning = _argon13()
    spinning.set_momenta(np.cross([0.0, 0.0, 1.0], spinning.positions))  # a rigid spin: L != 0
    assert moving_degrees_of_freedom(spinning, "nve") == 3 * 13 - 3
    co2 = Atoms("CO2", positions=[[0, 0, 0], [0, 0, 1.16], [0, 0, -1.16]])
    assert thermal_start(co2, "nve", 300.0, seed=0) == 3 * 3 - 6  # straight now, bent a step later
    np.testing.assert_allclose(co2.get_angular_momentum(), 0.0, atol=1e-12)
    n2 = Atoms("N2", positions=[[0, 0, 0], [0, 0, 1.1]])
    assert thermal_start(n2, "nose-hoover", 300.0, seed=0) == 1  # only the bond stretches
    np.testing.assert_allclose(n2.get_angular_momentum(), 0.0, atol=1e-12)


def test_a_start_read_back_from_extxyz_keeps_its_count(tmp_path):
    """extxyz stores momenta to 8 decimals: a frame written with zero net momentum and spin reads back
    with ~1e-8 of each. Counting that as a drift would give 3N, and a thermostat would then hold the 21
    moving degrees of freedom of ethanol at T * 27/21 (--keep-momenta from a trajectory's last frame)."""
    import ase.io
    from ase.build import molecule

    for seed in range(40):
        ethanol = molecule("CH3CH2OH")
        assert thermal_start(ethanol, "nose-hoover", 300.0, seed=seed) == 21
        ase.io.write(tmp_path / "start.xyz", ethanol)
        read_back = ase.io.read(tmp_path / "start.xyz")
        assert np.abs(read_back.get_momenta() - ethanol.get_momenta()).max() > 0  # rounded, as a file is
        assert moving_degrees_of_freedom(read_back, "nose-hoover") == 21, seed
    crystal = argon_crystal(1, temperature_K=60.0, seed=0)  # 4 atoms: 9
    ase.io.write(tmp_path / "crystal.xyz", crystal)
    assert moving_degrees_of_freedom(ase.io.read(tmp_path / "crystal.xyz"), "nve") == 9


def test_a_wire_keeps_zero_spin_about_its_axis_and_does_not_count_it():
    # Periodic along one cell vector only (tilted off the Cartesian axes): turning the wire about that
    # axis changes nothing, so its spin about it is conserved and holds energy no thermostat reaches.
    wire = argon_crystal(2, temperature_K=0.0)
    wire.pbc = (False, False, True)
    wire.center(vacuum=8.0, axis=(0, 1))
    wire.rotate(35.0, (1.0, 2.0, 0.5), rotate_cell=True)
    axis = wire.cell.array[2] / np.linalg.norm(wire.cell.array[2])
    dof = thermal_start(wire, "nve", 60.0, seed=4)
    assert dof == 3 * 32 - 4
    r = wire.positions - wire.get_center_of_mass()
    scale = np.abs(r).sum() * np.abs(wire.get_momenta()).sum()
    assert abs(np.cross(r, wire.get_momenta()).sum(axis=0) @ axis) < 1e-12 * scale
    assert moving_degrees_of_freedom(wire, "langevin") == 0  # the bath turns it too: 3N
    spun = wire.copy()
    spun.set_momenta(wire.get_momenta() + np.cross(axis, r) * wire.get_masses()[:, None] * 1e-3)
    assert moving_degrees_of_freedom(spun, "nve") == 3 * 32 - 3  # a spin it keeps is no constraint
    sim = Simulation(smooth_argon_forces(wire), wire, "nve", params(dt=5 * units.fs, dof=dof))
    sim.run(400)
    moved = sim.atoms()
    r, p = moved.positions - moved.get_center_of_mass(), moved.get_momenta()
    assert np.abs(p).sum() > 0
    assert abs(np.cross(r, p).sum(axis=0) @ axis) < 1e-9 * np.abs(r).sum() * np.abs(p).sum()


@pytest.mark.parametrize("held", ["atoms", "cartesian"])
def test_a_start_with_held_atoms_has_the_asked_temperature(held):
    # Half the crystal held: the moving components start at the temperature asked for (mean over
    # seeds; one draw's temperature scatters by sqrt(2/dof)); counting the held ones as drawn gave half.
    from ase.constraints import FixAtoms, FixCartesian

    temperatures = []
    for seed in range(20):
        atoms = argon_crystal(3, temperature_K=0.0)
        half = np.arange(len(atoms)) % 2 == 0
        atoms.set_constraint(FixAtoms(mask=half) if held == "atoms" else FixCartesian(half, mask=(1, 1, 0)))
        dof = thermal_start(atoms, "nve", 300.0, seed=seed)
        mobile = mobility(atoms)
        kept = 1 if held == "cartesian" else 0  # z is free for every atom: its net momentum is kept
        assert dof == mobile.sum() - kept and np.all(atoms.get_momenta()[mobile == 0] == 0)
        temperatures.append(2 * atoms.get_kinetic_energy() / (dof * units.kB))
    assert np.mean(temperatures) == pytest.approx(300.0, rel=0.05)


def test_held_along_one_axis_the_net_momentum_and_spin_in_the_plane_do_not_count():
    # Every atom held in z: the push-back is along z, so the x and y net momenta and the spin about z
    # are kept (at zero, as the start leaves them) and exchange no energy: 2N - 3 move, not 2N.
    from ase.constraints import FixCartesian

    cluster = _argon13()
    cluster.set_constraint(FixCartesian(range(13), mask=(0, 0, 1)))
    dof = thermal_start(cluster, "nve", 20.0, seed=3)
    assert dof == 2 * 13 - 3
    assert moving_degrees_of_freedom(cluster, "langevin") == 2 * 13  # the bath moves them all
    sim = Simulation(smooth_argon_forces(cluster), cluster, "nve", params(dt=5 * units.fs, dof=dof))
    sim.run(400)
    moved = sim.atoms()
    scale = np.abs(moved.get_momenta()).sum()
    assert scale > 0 and np.all(moved.get_momenta()[:, 2] == 0)
    np.testing.assert_allclose(moved.get_momenta()[:, :2].sum(axis=0), 0.0, atol=1e-10 * scale)
    assert abs(moved.get_angular_momentum()[2]) < 1e-9 * scale * np.abs(moved.positions).sum()
    crystal = argon_crystal(2, temperature_K=60.0, seed=0)  # periodic: no spin is kept
    crystal.set_constraint(FixCartesian(range(len(crystal)), mask=(0, 0, 1)))
    assert moving_degrees_of_freedom(crystal, "nose-hoover") == 2 * 32 - 2
    half = argon_crystal(2, temperature_K=60.0, seed=0)
    half.set_constraint(FixCartesian(range(0, 32, 2), mask=(0, 0, 1)))  # x and y free for all, z for half
    assert moving_degrees_of_freedom(half, "nve") == 3 * 32 - 16 - 2


def _argon13_nose_hoover(count_moving: bool) -> list[dict]:
    atoms = _argon13()
    dof = thermal_start(atoms, "nose-hoover", 20.0, seed=0)
    p = params(dt=5 * units.fs, kT=units.kB * 20.0, tdamp=200 * units.fs, dof=dof if count_moving else 0)
    sim = Simulation(smooth_argon_forces(atoms), atoms, "nose-hoover", p)
    sim.run(1000)
    rows = []
    sim.attach(lambda s: rows.append(s.thermo()), 10)
    sim.run(12000)
    np.testing.assert_allclose(sim.atoms().get_angular_momentum(), 0.0, atol=1e-9)
    return rows


def test_nose_hoover_holds_the_moving_degrees_of_freedom_at_the_target():
    # Ar13 in vacuum at 20 K, zero net and angular momentum: 3N - 6 = 33 degrees of freedom move.
    # The chain drives the time average of sum p^2/m to dof kT (its momentum's mean rate is zero),
    # so counting 3N = 39 settles the moving ones at 39/33 T = 23.6 K; counting 33 holds 20 K.
    moving, all_3n = _argon13_nose_hoover(True), _argon13_nose_hoover(False)
    kinetic = {
        name: 2 * np.array([r["ekin"] for r in rows]) / (33 * units.kB)
        for name, rows in (("moving", moving), ("3N", all_3n))
    }
    np.testing.assert_allclose([r["temperature"] for r in moving], kinetic["moving"], rtol=1e-12)  # the log counts 33
    assert kinetic["moving"].mean() == pytest.approx(20.0, rel=0.04)
    assert kinetic["3N"].mean() > 1.12 * 20.0


def _argon_mtk(pressure_gpa: float) -> list[dict]:
    atoms = argon_crystal(3, temperature_K=60.0, seed=2)
    p = params(
        dt=10 * units.fs,
        kT=units.kB * 60.0,
        tdamp=200 * units.fs,
        taup=1000 * units.fs,
        pressure=pressure_gpa * units.GPa,
    )
    sim = Simulation(smooth_argon_forces(atoms, compute_stress=True), atoms, "npt-mtk", p)
    sim.run(500)
    rows = []
    sim.attach(lambda s: rows.append(s.thermo()), 10)
    sim.run(4000)
    return rows


def test_mtk_npt_holds_pressure_and_temperature_and_conserves_its_extended_energy():
    # 108-atom smooth-LJ argon at 60 K. MTK drives the time average of 3V (P - P0) + (3/dof) sum p^2/m
    # to zero (the volume momentum's mean rate), so <P> = P0 - kT/<V> ~ P0 - 2e-4 GPa, far more precisely
    # than the instantaneous P fluctuates (~0.02 GPa); squeezing harder (0.1 GPa) shrinks the box; and
    # E + chains + p_eps^2/2W + P0 V is conserved to the integrator's accuracy (<< N kT).
    free, squeezed = _argon_mtk(0.0), _argon_mtk(0.1)
    for rows, target in ((free, 0.0), (squeezed, 0.1)):
        pressures = np.array([r["pressure"] for r in rows]) / units.GPa
        assert pressures.std() > 0.005  # a barostat that froze the box would pass the mean trivially
        assert pressures.mean() == pytest.approx(target, abs=0.005)
        assert np.mean([r["temperature"] for r in rows]) == pytest.approx(60.0, rel=0.04)
        assert np.ptp([r["conserved"] for r in rows]) < 0.01 * units.kB * 60.0 * 108
    volumes = [np.mean([r["volume"] for r in rows]) for rows in (free, squeezed)]
    assert volumes[1] < 0.97 * volumes[0]


def test_full_cell_mtk_holds_the_six_cell_momenta_at_the_target():
    # A symmetric stress keeps the cell momentum p_g symmetric: 6 components move, and the barostat
    # chain must hold <sum p_g^2 / W> at 6 kT (ASE's MTKNPT counts 9: 9 kT, each component 1.5x hot).
    atoms = argon_crystal(2, temperature_K=60.0, seed=3)
    kT = units.kB * 60.0
    p = params(dt=5 * units.fs, kT=kT, tdamp=100 * units.fs, taup=200 * units.fs)
    sim = Simulation(smooth_argon_forces(atoms, compute_stress=True), atoms, "npt-mtk-cell", p)
    sim.run(1000)
    momenta = []
    sim.attach(lambda s: momenta.append(np.asarray(s.state.cell_momentum)), 5)
    sim.run(12000)
    momenta = np.array(momenta)
    w = (3 * 32 / 3 + 1) * kT * (200 * units.fs) ** 2  # (3N/3 + 1) kT pdamp^2
    np.testing.assert_allclose(momenta, momenta.transpose(0, 2, 1), atol=1e-10)
    assert np.mean(np.sum(momenta**2, axis=(1, 2))) / w == pytest.approx(6 * kT, rel=0.1)


def test_fixed_atoms_stay_put_and_the_free_ones_thermalise_over_their_own_degrees_of_freedom():
    # Half of 32 argon atoms held (FixAtoms) and one more held in z (FixCartesian): 47 free coordinates.
    # Langevin gets no noise on the held ones, so they stay put to the bit, and gives each free coordinate
    # kT: the log, counting 47, reads 60 K (counting 3N = 96 would read 29 K). NVE with the same
    # holds conserves E (held atoms do no work); NPT, which moves every atom with the cell, is refused.
    from ase.constraints import FixAtoms, FixCartesian

    atoms = argon_crystal(2, temperature_K=60.0, seed=5)
    low = np.argsort(atoms.positions[:, 2])[:16]
    atoms.set_constraint([FixAtoms(indices=low), FixCartesian(int(np.argmax(atoms.positions[:, 2])), (0, 0, 1))])
    assert moving_degrees_of_freedom(atoms, "langevin") == moving_degrees_of_freedom(atoms, "nve") == 47
    start = atoms.positions.copy()
    kT = units.kB * 60.0
    lang = Simulation(
        smooth_argon_forces(atoms), atoms, "langevin", params(dt=5 * units.fs, kT=kT, friction=0.05 / units.fs)
    )
    assert float(lang.params.dof) == 47  # 0 (3N) would count the held coordinates
    temperatures = _sample(lang, 3000, 10)[50:, 0]
    assert np.mean(temperatures) == pytest.approx(60.0, rel=0.06)
    np.testing.assert_array_equal(np.asarray(lang.state.positions)[low], start[low])
    top = int(np.argmax(start[:, 2]))
    assert float(lang.state.positions[top, 2]) == start[top, 2] and float(lang.state.positions[top, 0]) != start[top, 0]

    nve = Simulation(smooth_argon_forces(atoms), atoms, "nve", params(dt=5 * units.fs))
    energies = []
    for _ in range(20):
        nve.run(25)
        energies.append(nve.thermo()["etot"])
    assert np.ptp(energies) < 1e-3 * kT * 47
    with pytest.raises(ValueError, match="npt-mtk: the atoms carry FixAtoms/FixCartesian"):
        p = params(dt=5 * units.fs, kT=kT, tdamp=100 * units.fs, taup=200 * units.fs)
        Simulation(smooth_argon_forces(atoms, compute_stress=True), atoms, "npt-mtk", p)
