"""The ASE-style drivers (md.VelocityVerlet, ...) behave as ase.md's do where users rely on it."""

import csv
import io
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.emt import EMT
from ase.md.verlet import VelocityVerlet as AseVelocityVerlet

import md
import mlpot
from md.toy import argon_crystal, argon_potential
from md.velocities import maxwell_boltzmann

ROOT = Path(__file__).resolve().parents[1]
ETHANOL_MODEL = ROOT / "models" / "ethanol-painn.mlpot"
DT = 5 * units.fs  # for the argon toy


@pytest.fixture(scope="module")
def argon():
    return argon_potential(6.5)


def _argon_atoms(potential, seed=8):
    atoms = argon_crystal(2, temperature_K=60.0, seed=seed)
    atoms.calc = mlpot.Calculator(potential)
    return atoms


def _assert_same_point(a, b, atol=0.0):
    """Same positions and momenta: bit for bit by default."""
    np.testing.assert_allclose(a.positions, b.positions, rtol=0, atol=atol)
    np.testing.assert_allclose(a.get_momenta(), b.get_momenta(), rtol=0, atol=atol)


# -- edits to the atoms between runs --------------------------------------------------------------------


def test_atoms_edited_between_runs_continue_like_a_fresh_driver():
    start = ase.io.read(ROOT / "datasets" / "ethanol" / "train.xyz", 0)
    maxwell_boltzmann(start, 300.0, seed=0)
    atoms = start.copy()
    atoms.calc = mlpot.Calculator(ETHANOL_MODEL)
    dyn = md.VelocityVerlet(atoms, 0.5 * units.fs)
    dyn.run(5)
    atoms.positions[0] += [0.3, 0.0, 0.0]
    atoms.set_momenta(np.zeros((len(atoms), 3)))
    edited = atoms.copy()
    dyn.run(1)
    assert dyn.nsteps == 6  # the step counter carries on

    fresh_atoms = edited.copy()
    fresh_atoms.calc = mlpot.Calculator(ETHANOL_MODEL)
    md.VelocityVerlet(fresh_atoms, 0.5 * units.fs).run(1)
    np.testing.assert_allclose(atoms.positions, fresh_atoms.positions, rtol=0, atol=1e-10)
    np.testing.assert_allclose(atoms.get_momenta(), fresh_atoms.get_momenta(), rtol=0, atol=1e-10)
    assert atoms.get_potential_energy() == pytest.approx(fresh_atoms.get_potential_energy(), abs=1e-8)


def test_an_unedited_second_run_is_bit_identical_to_one_long_run(argon):
    one, two = _argon_atoms(argon), _argon_atoms(argon)
    md.Langevin(one, DT, temperature_K=60.0, friction=0.02 / units.fs, seed=3).run(10)
    dyn = md.Langevin(two, DT, temperature_K=60.0, friction=0.02 / units.fs, seed=3)
    dyn.run(4)
    dyn.run(6)
    _assert_same_point(one, two)


def test_momenta_rescaled_before_the_first_run_and_masses_changed_are_used(argon):
    atoms = _argon_atoms(argon)
    dyn = md.VelocityVerlet(atoms, DT)
    atoms.set_momenta(2 * atoms.get_momenta())
    atoms.set_masses(2 * atoms.get_masses())
    edited = atoms.copy()
    dyn.run(3)
    fresh = edited.copy()
    fresh.calc = mlpot.Calculator(argon)
    md.VelocityVerlet(fresh, DT).run(3)
    _assert_same_point(atoms, fresh, atol=1e-10)


def test_edits_made_by_a_callback_are_adopted_as_between_runs(argon):
    """A callback that rescales velocities (a hand-made thermostat) acts, as with ASE's drivers."""
    by_callback, by_hand = _argon_atoms(argon), _argon_atoms(argon)
    dyn = md.VelocityVerlet(by_callback, DT)
    dyn.attach(lambda: by_callback.set_momenta(0.5 * by_callback.get_momenta()), -3)
    dyn.run(6)
    other = md.VelocityVerlet(by_hand, DT)
    other.run(3)
    by_hand.set_momenta(0.5 * by_hand.get_momenta())
    other.run(3)
    _assert_same_point(by_callback, by_hand)


def test_a_changed_number_or_kind_of_atoms_is_refused(argon):
    atoms = _argon_atoms(argon)
    dyn = md.VelocityVerlet(atoms, DT)
    dyn.run(1)
    atoms.numbers[0] = 36
    with pytest.raises(ValueError, match="number or kinds of atoms changed.*new driver"):
        dyn.run(1)
    del atoms[0]
    with pytest.raises(ValueError, match="number or kinds of atoms changed.*new driver"):
        dyn.run(1)


# -- attach ------------------------------------------------------------------------------------------------


def _calls(dyn, log):
    dyn.attach(lambda: log.append(("every 3", dyn.nsteps)), 3)
    dyn.attach(lambda: log.append(("every 5", dyn.nsteps)), 5)
    dyn.attach(lambda: log.append(("once at 4", dyn.nsteps)), -4)
    dyn.attach(lambda: log.append(("once at 20", dyn.nsteps)), -20)


def test_callbacks_are_called_at_the_steps_ase_calls_them_with_few_chunks(argon):
    ours, theirs = _argon_atoms(argon), _argon_atoms(argon)
    got, want = [], []
    dyn = md.VelocityVerlet(ours, DT)
    _calls(dyn, got)
    ref = AseVelocityVerlet(theirs, DT)
    _calls(ref, want)
    dyn.run(15)
    ref.run(15)
    assert got == want
    stops = {3, 4, 5, 6, 9, 10, 12, 15}  # each callback stops the engine only at its own steps
    assert dyn.simulation.timings["chunks"] == len(stops)


def test_attach_interval_zero_or_not_an_integer_is_refused(argon):
    dyn = md.VelocityVerlet(_argon_atoms(argon), DT)
    with pytest.raises(ValueError, match="interval"):
        dyn.attach(print, 0)
    with pytest.raises(TypeError, match="interval"):
        dyn.attach(print, 2.5)


# -- files, as ASE takes them --------------------------------------------------------------------------------


def test_an_open_trajectory_object_is_written_to_and_left_open(argon, tmp_path):
    atoms = _argon_atoms(argon)
    traj = ase.io.Trajectory(tmp_path / "md.traj", "w")
    with md.VelocityVerlet(atoms, DT, trajectory=traj, loginterval=2) as dyn:
        dyn.run(4)
    traj.write(atoms)  # still open: the caller owns it, as with ASE
    traj.close()
    frames = ase.io.read(tmp_path / "md.traj", ":")
    assert len(frames) == 4  # steps 0, 2, 4 and the caller's frame
    assert frames[2].get_potential_energy() == pytest.approx(atoms.get_potential_energy(), abs=1e-10)


def test_logfile_dash_writes_to_stdout_and_a_file_object_is_written_to(argon, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    md.VelocityVerlet(_argon_atoms(argon), DT, logfile="-", loginterval=2).run(4)
    assert not (tmp_path / "-").exists()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("step,") and [line.split(",")[0] for line in lines[1:]] == ["0", "2", "4"]
    stream = io.StringIO()
    md.VelocityVerlet(_argon_atoms(argon), DT, logfile=stream).run(2)
    assert len(stream.getvalue().splitlines()) == 4 and not stream.closed


def test_with_block_closes_the_files_it_opened(argon, tmp_path):
    with md.VelocityVerlet(
        _argon_atoms(argon), DT, trajectory=str(tmp_path / "t.xyz"), logfile=str(tmp_path / "l.csv")
    ) as dyn:
        dyn.run(2)
    assert all(writer._file.closed for writer in dyn._writers)
    assert len(ase.io.read(tmp_path / "t.xyz", ":")) == 3


def test_bad_trajectory_and_logfile_arguments_are_named(argon, tmp_path):
    with pytest.raises(TypeError, match="trajectory"):
        md.VelocityVerlet(_argon_atoms(argon), DT, trajectory=3)
    # extxyz text under .pdb read back as one empty structure, without an error
    with pytest.raises(ValueError, match=r"trajectory .*t\.pdb: the trajectory is written as ASE's \.traj or"):
        md.VelocityVerlet(_argon_atoms(argon), DT, trajectory=tmp_path / "t.pdb")
    assert not (tmp_path / "t.pdb").exists()
    with pytest.raises(TypeError, match="logfile"):
        md.VelocityVerlet(_argon_atoms(argon), DT, logfile=3)


# -- ASE keywords ------------------------------------------------------------------------------------------


def test_langevin_rng_draws_the_seed(argon):
    runs = []
    for _ in range(2):
        atoms = _argon_atoms(argon)
        dyn = md.Langevin(atoms, DT, temperature_K=60.0, friction=0.02 / units.fs, rng=np.random.default_rng(5))
        dyn.run(3)
        runs.append(atoms.get_momenta())
    assert np.array_equal(*runs)
    with pytest.raises(TypeError, match="seed"):
        md.Langevin(
            _argon_atoms(argon), DT, temperature_K=60.0, friction=0.02 / units.fs, seed=1, rng=np.random.default_rng(5)
        )


def test_fixcm_and_tchain_map_where_they_can(argon):
    md.Langevin(_argon_atoms(argon), DT, temperature_K=60.0, friction=0.02 / units.fs, fixcm=False)
    with pytest.raises(ValueError, match="fixcm"):
        md.Langevin(_argon_atoms(argon), DT, temperature_K=60.0, friction=0.02 / units.fs, fixcm=True)
    dyn = md.NoseHooverChainNVT(_argon_atoms(argon), DT, temperature_K=60.0, tdamp=100 * DT, tchain=5)
    dyn.run(2)
    assert dyn.simulation.state.chain_momenta.shape == (5,)
    with pytest.raises(ValueError, match="tloop"):
        md.NoseHooverChainNVT(_argon_atoms(argon), DT, temperature_K=60.0, tdamp=100 * DT, tloop=2)
    npt = {"temperature_K": 60.0, "pressure_au": 0.0, "tdamp": 100 * DT, "pdamp": 1000 * DT}
    dyn = md.IsotropicMTKNPT(_argon_atoms(argon), DT, **npt, tchain=4, pchain=4)
    dyn.run(2)
    assert (
        dyn.simulation.state.cell_chain_momenta.shape == (4,) and np.abs(dyn.simulation.state.cell_momentum).max() > 0
    )
    with pytest.raises(ValueError, match="tchain and pchain"):
        md.IsotropicMTKNPT(_argon_atoms(argon), DT, **npt, tchain=3, pchain=2)
    with pytest.raises(ValueError, match="ploop"):
        md.IsotropicMTKNPT(_argon_atoms(argon), DT, **npt, ploop=2)


def test_unsupported_keywords_are_named(argon):
    with pytest.raises(TypeError, match="'temperature'.*temperature_K"):
        md.NoseHooverChainNVT(_argon_atoms(argon), DT, 60.0, 100 * DT, temperature=0.01)
    with pytest.raises(TypeError, match="'mystery'"):
        md.VelocityVerlet(_argon_atoms(argon), DT, mystery=1)


def test_langevin_refuses_ases_positional_temperature_in_ev(argon):
    # ase.md.Langevin(atoms, dt, 300 * units.kB, friction) means 300 K; read as kelvin it would be 0.026 K.
    with pytest.raises(TypeError, match="eV.*temperature_K"):
        md.Langevin(_argon_atoms(argon), DT, 300 * units.kB, 0.02 / units.fs)
    with pytest.raises(TypeError, match="eV.*temperature_K"):
        md.Langevin(_argon_atoms(argon), DT, temperature=300 * units.kB, friction=0.02 / units.fs)
    with pytest.raises(TypeError, match="missing friction"):
        md.Langevin(_argon_atoms(argon), DT, temperature_K=300)


def test_npt_berendsen_takes_ases_keywords_and_refuses_its_positional_temperature_in_ev(argon):
    # ase.md.NPTBerendsen(atoms, dt, temperature, *, temperature_K=, pressure_au=, compressibility_au=, ...):
    # a positional 300 K in eV was read as 0.026 K, and ASE's keywords were refused as missing arguments
    with pytest.raises(TypeError, match="NPTBerendsen.*eV.*temperature_K"):
        md.NPTBerendsen(_argon_atoms(argon), DT, 300 * units.kB, pressure_au=0.0, compressibility_au=1e-3)
    with pytest.raises(TypeError, match="missing pressure_au and compressibility_au"):
        md.NPTBerendsen(_argon_atoms(argon), DT, temperature_K=300.0)
    with pytest.raises(TypeError, match="'pressure'.*pressure_au"):
        md.NPTBerendsen(_argon_atoms(argon), DT, temperature_K=300.0, pressure=1.0, compressibility_au=1e-3)
    dyn = md.NPTBerendsen(_argon_atoms(argon), DT, temperature_K=60.0, pressure_au=0.0, compressibility_au=1e-3)
    dyn.run(2)
    assert dyn.get_number_of_steps() == 2


def test_append_trajectory_appends(argon, tmp_path):
    for _ in range(2):
        with md.VelocityVerlet(
            _argon_atoms(argon), DT, trajectory=str(tmp_path / "t.xyz"), loginterval=2, append_trajectory=True
        ) as dyn:
            dyn.run(2)
    assert [f.info["step"] for f in ase.io.read(tmp_path / "t.xyz", ":")] == [0, 2, 0, 2]


def test_append_trajectory_continues_a_traj_written_by_ases_own_md(argon, tmp_path):
    # equilibrate with ASE, continue with mlpot: ASE's frames carry no step, and need none here
    path = tmp_path / "md.traj"
    atoms = _argon_atoms(argon)
    with AseVelocityVerlet(atoms, DT, trajectory=str(path)) as dyn:
        dyn.run(2)
    with md.VelocityVerlet(atoms, DT, trajectory=str(path), append_trajectory=True) as dyn:
        dyn.run(2)
    frames = ase.io.read(path, ":")
    assert len(frames) == 3 + 3 and [f.info.get("step") for f in frames[3:]] == [0, 1, 2]
    np.testing.assert_allclose(frames[3].positions, frames[2].positions, rtol=0, atol=1e-12)


# -- which calculator ----------------------------------------------------------------------------------------


def test_potential_and_a_different_calculator_are_refused(argon):
    atoms = argon_crystal(2)
    atoms.calc = EMT()
    with pytest.raises(ValueError, match="potential.*EMT"):
        md.VelocityVerlet(atoms, DT, potential=argon)
    atoms.calc = mlpot.Calculator(argon_potential(8.5))
    with pytest.raises(ValueError, match="potential.*another model"):
        md.VelocityVerlet(atoms, DT, potential=argon)


def test_potential_and_a_calculator_of_the_same_model_are_accepted(argon):
    atoms = argon_crystal(2)
    atoms.calc = mlpot.Calculator(argon_potential(6.5))  # an equal model, another object
    calc = atoms.calc
    md.VelocityVerlet(atoms, DT, potential=argon).run(2)
    assert atoms.calc is calc
    expected = mlpot.Calculator(argon).get_potential_energy(atoms.copy())
    assert atoms.get_potential_energy() == pytest.approx(expected, abs=1e-10)


def test_positional_arguments_are_in_ases_order(argon, tmp_path):
    # ASE: VelocityVerlet(atoms, timestep, trajectory, logfile, loginterval); the file name used to
    # land in our `potential` slot.
    atoms = _argon_atoms(argon)
    with md.VelocityVerlet(atoms, DT, str(tmp_path / "t.traj"), str(tmp_path / "log.csv"), 2) as dyn:
        dyn.run(4)
    frames = ase.io.read(tmp_path / "t.traj", ":")
    rows = list(csv.DictReader((tmp_path / "log.csv").read_text().splitlines()))
    assert [int(row["step"]) for row in rows] == [0, 2, 4]  # the 4th argument is the log, the 5th its interval
    assert len(frames) == 3  # and the 3rd the trajectory, at the same interval
    for frame, row in zip(frames, rows):
        assert frame.get_potential_energy() == pytest.approx(float(row["epot_eV"]), abs=1e-8)
    assert frames[-1].get_potential_energy() != pytest.approx(frames[0].get_potential_energy(), abs=1e-8)
    with pytest.raises(TypeError):
        md.VelocityVerlet(atoms, DT, None, None, 1, argon)  # potential is keyword-only


def test_a_model_file_in_the_old_potential_slot_is_refused_not_overwritten(argon, tmp_path):
    # The third positional argument used to be the potential; now ASE's trajectory. Opening a
    # model file for writing would destroy it.
    argon.save(tmp_path / "m.mlpot")
    before = (tmp_path / "m.mlpot").read_bytes()
    with pytest.raises(TypeError, match="potential="):
        md.VelocityVerlet(_argon_atoms(argon), DT, str(tmp_path / "m.mlpot"))
    with pytest.raises(TypeError, match="potential="):
        md.VelocityVerlet(_argon_atoms(argon), DT, argon)
    assert (tmp_path / "m.mlpot").read_bytes() == before


def test_an_edit_to_the_atoms_keeps_the_barostat_and_the_chains(argon):
    # atoms.wrap() in a callback is an edit (positions change by lattice vectors) that leaves the physics
    # alone: the run must go on as if it had not happened, barostat included (ASE's MTK ignores edits).
    npt = {"temperature_K": 60.0, "pressure_au": 0.05 * units.GPa, "tdamp": 100 * DT, "pdamp": 100 * DT}
    plain, edited = _argon_atoms(argon), _argon_atoms(argon)
    runs = [md.IsotropicMTKNPT(plain, DT, **npt), md.IsotropicMTKNPT(edited, DT, **npt)]
    for dyn in runs:
        dyn.run(50)
    edited.positions += edited.cell.array[0]  # one lattice vector: the same configuration
    for dyn in runs:
        dyn.run(10)
    a, b = (dyn.simulation.state for dyn in runs)
    assert np.abs(a.cell_momentum).max() > 0
    for field in ("cell_momentum", "cell_chain_momenta", "chain_momenta", "momenta", "cell"):
        np.testing.assert_allclose(getattr(b, field), getattr(a, field), rtol=1e-9, atol=1e-12)


def test_a_run_in_segments_appends_its_log_with_its_trajectory(argon, tmp_path):
    atoms = _argon_atoms(argon)
    log, traj = tmp_path / "log.csv", tmp_path / "t.traj"
    for append in (False, True):
        with md.VelocityVerlet(atoms, DT, str(traj), str(log), 2, append_trajectory=append) as dyn:
            dyn.run(4)
    rows = list(csv.DictReader(log.read_text().splitlines()))  # one header, both segments' rows
    assert [int(row["step"]) for row in rows] == [0, 2, 4, 0, 2, 4]
    assert len(ase.io.read(traj, ":")) == 6
    assert float(rows[3]["epot_eV"]) == pytest.approx(float(rows[2]["epot_eV"]), abs=1e-10)  # went on from there
    with md.VelocityVerlet(atoms, DT, logfile=str(log), loginterval=2) as dyn:  # a new run starts it over
        dyn.run(2)
    assert len(log.read_text().splitlines()) == 1 + 2


def test_appending_to_a_log_cuts_a_torn_line_and_refuses_other_columns(tmp_path):
    from md.io import ThermoLog, log_columns

    path = tmp_path / "log.csv"
    path.write_text(",".join(log_columns(False)) + "\n0,0,1,1,2,300\n5,2.5,1,1,2,30")  # killed mid-row
    log = ThermoLog(path, with_pressure=False, append=True)
    log.write({"step": 5, "time_fs": 2.5, "epot": 1.0, "ekin": 1.0, "etot": 2.0, "temperature": 300.0})
    log.close()
    assert [line.split(",")[0] for line in path.read_text().splitlines()[1:]] == ["0", "5"]
    with pytest.raises(ValueError, match="its columns are .*log to a new file"):
        ThermoLog(path, with_pressure=True, append=True)
    # a Nosé-Hoover log begun before conserved_eV existed goes on without it, its rows in line
    log = ThermoLog(path, with_pressure=False, append=True, with_conserved=True)
    log.write(
        {"step": 10, "time_fs": 5.0, "epot": 1.0, "ekin": 1.0, "etot": 2.0, "temperature": 300.0, "conserved": 2.0}
    )
    log.close()
    assert path.read_text().splitlines()[-1] == "10,5.000000,1.0000000000,1.0000000000,2.0000000000,300.000000"


def test_a_nose_hoover_log_has_a_conserved_energy_that_holds_where_etot_does_not(argon):
    atoms = _argon_atoms(argon)
    out = io.StringIO()
    # heated from 60 K to 120 K: the thermostat feeds the atoms energy, which its chain accounts for
    dyn = md.NoseHooverChainNVT(atoms, DT, temperature_K=120.0, tdamp=10 * DT, logfile=out, loginterval=5)
    dyn.run(60)
    rows = list(csv.DictReader(out.getvalue().splitlines()))
    conserved, etot = (np.array([float(r[c]) for r in rows]) for c in ("conserved_eV", "etot_eV"))
    assert conserved[0] == pytest.approx(etot[0], abs=1e-9)  # the chain starts at rest, with no energy
    assert np.ptp(etot) > 0.3 and np.ptp(conserved) < 2e-3
    assert conserved[-1] == pytest.approx(dyn.get_conserved_energy(), abs=1e-9)
    out = io.StringIO()
    md.Langevin(_argon_atoms(argon), DT, temperature_K=60.0, friction=0.02 / units.fs, logfile=out, seed=1)
    assert "conserved_eV" not in out.getvalue()  # a bath with no energy account: no such quantity


def test_appending_to_an_extxyz_trajectory_cuts_a_frame_torn_by_a_kill(tmp_path):
    from md.io import TrajectoryWriter

    path = tmp_path / "t.xyz"
    frames = [Atoms("Ar2", positions=[[0, 0, 0], [0, 0, 3.8 + 0.1 * k]], info={"step": 5 * k}) for k in range(3)]
    writer = TrajectoryWriter(path)
    for atoms in frames[:2]:
        writer.write(atoms)
    writer.close()
    whole = path.read_bytes()
    ase.io.write(tmp_path / "next.xyz", frames[2])
    path.write_bytes(whole + (tmp_path / "next.xyz").read_bytes()[:-20])  # killed mid-way through frame 2
    with pytest.warns(UserWarning, match=r"t.xyz: cut a torn last frame \(\d+ bytes\)"):
        writer = TrajectoryWriter(path, append=True)
    assert writer.last_step == 5 and path.read_bytes() == whole
    writer.write(frames[2])
    writer.close()
    assert [atoms.info["step"] for atoms in ase.io.read(path, ":")] == [0, 5, 10]


def test_langevin_without_a_seed_draws_fresh_noise_as_ase_does(argon):
    # ASE's rng=None draws from np.random: two drivers (a temperature ramp's segments, replicas) differ
    runs = []
    for _ in range(2):
        atoms = _argon_atoms(argon)
        md.Langevin(atoms, DT, temperature_K=60.0, friction=0.05 / units.fs).run(5)
        runs.append(atoms.positions.copy())
    assert np.abs(runs[0] - runs[1]).max() > 1e-8


def test_edits_between_runs_a_constraint_the_timestep_and_a_calculator(argon):
    from ase.calculators.emt import EMT
    from ase.constraints import FixAtoms

    atoms = _argon_atoms(argon)
    dyn = md.VelocityVerlet(atoms, DT)
    dyn.run(3)
    atoms.set_constraint(FixAtoms([0]))  # held from now on, as with ASE's drivers
    held = atoms.positions[0].copy()
    dyn.run(5)
    np.testing.assert_array_equal(atoms.positions[0], held)
    assert np.abs(atoms.positions[1:] - dyn.simulation.atoms().positions[1:]).max() == 0
    # a new timestep from the next step on: the same point as a fresh driver at that timestep
    fresh = atoms.copy()
    fresh.calc = mlpot.Calculator(argon)
    dyn.dt = 2 * DT
    dyn.run(4)
    md.VelocityVerlet(fresh, 2 * DT).run(4)
    _assert_same_point(atoms, fresh, atol=1e-12)
    # the same model under a new Calculator is fine; another model, or new pbc, is refused
    atoms.calc = mlpot.Calculator(argon)
    dyn.run(1)
    atoms.calc = EMT()
    with pytest.raises(ValueError, match="atoms.calc was replaced by a EMT of another model"):
        dyn.run(1)
    atoms.calc = mlpot.Calculator(argon)
    atoms.pbc = (True, True, False)
    with pytest.raises(ValueError, match="atoms.pbc changed"):
        dyn.run(1)


def test_driver_frames_are_unwrapped_and_keep_the_atoms_info(argon, tmp_path):
    # ASE writes the positions it integrates (an MSD needs them) and the atoms' info
    atoms = _argon_atoms(argon)
    atoms.positions[0] += atoms.cell[0]  # one atom an image away: wrapped, it would jump by a lattice vector
    atoms.info["run"] = "segment-1"
    with md.VelocityVerlet(atoms, DT, str(tmp_path / "t.traj"), loginterval=2) as dyn:
        dyn.run(4)
    last = ase.io.read(tmp_path / "t.traj", -1)
    np.testing.assert_allclose(last.positions, atoms.positions, rtol=0, atol=1e-12)
    assert last.positions[0, 0] > atoms.cell[0, 0] - 1.0 and last.info == {"run": "segment-1", "step": 4}


def test_the_safety_stops_are_driver_keywords(argon):
    from md.simulation import MDError

    with pytest.raises(MDError, match="closer than 3.8"):  # argon's neighbours sit at 3.72 Å
        md.VelocityVerlet(_argon_atoms(argon), DT, min_distance=3.8)
    # the crystal starts at ~60 K; the message names the setting, not only the structure
    with pytest.raises(MDError, match="temperature exceeded 30 K .the limit: --max-temperature, max_temperature_K="):
        md.Langevin(_argon_atoms(argon), DT, temperature_K=60.0, friction=0.05 / units.fs, max_temperature_K=30.0)


@pytest.mark.parametrize(
    "make, named",
    [
        (lambda a: md.VelocityVerlet(a, float("nan")), "timestep: must be finite and > 0 for nve, not nan"),
        (lambda a: md.VelocityVerlet(a, 0.0), "timestep: must be finite and > 0"),
        (lambda a: md.Langevin(a, DT, temperature_K=60.0, friction=-0.01 / units.fs, seed=0), "friction: must be"),
        (lambda a: md.Langevin(a, DT, temperature_K=-5.0, friction=0.01 / units.fs, seed=0), "temperature_K: .*-5 K"),
        (lambda a: md.NoseHooverChainNVT(a, DT, temperature_K=60.0, tdamp=0.0), "tdamp: must be finite and > 0"),
        (lambda a: md.NoseHooverChainNVT(a, DT, temperature_K=0.0, tdamp=100 * DT), "temperature_K: .*above 0 K"),
        (lambda a: md.IsotropicMTKNPT(a, DT, 60.0, 0.0, tdamp=100 * DT, pdamp=0.0), "pdamp: must be finite and > 0"),
        (lambda a: md.MTKNPT(a, DT, 60.0, float("inf"), tdamp=100 * DT, pdamp=1000 * DT), "pressure_au: must be"),
        (
            lambda a: md.NPTBerendsen(a, DT, temperature_K=60.0, pressure_au=0.0, compressibility_au=1e-3, taut=0.0),
            "taut: must be finite and > 0",
        ),
        (
            lambda a: md.NPTBerendsen(a, DT, temperature_K=60.0, pressure_au=0.0, compressibility_au=-1e-3),
            "compressibility_au: must be finite and >= 0",
        ),
    ],
)
def test_driver_settings_are_checked_and_named_as_the_driver_takes_them(argon, make, named):
    # refused at once: not a NaN a step later blamed on the structure or the timestep
    with pytest.raises(ValueError, match=named):
        make(_argon_atoms(argon))


def test_setters_check_their_value_and_keep_the_old_one_on_a_refusal(argon):
    atoms = _argon_atoms(argon)
    dyn = md.NoseHooverChainNVT(atoms, DT, temperature_K=60.0, tdamp=100 * DT)
    for change, named in [
        (lambda: dyn.set_temperature(temperature_K=0), "temperature_K: .*above 0 K"),
        (lambda: dyn.set_taut(0.0), "taut: must be finite and > 0"),
        (lambda: dyn.set_timestep(-DT), "timestep: must be finite and > 0"),
        (lambda: setattr(dyn, "dt", float("nan")), "timestep: must be finite and > 0"),
    ]:
        with pytest.raises(ValueError, match=named):
            change()
    assert dyn.dt == DT and float(dyn.simulation.params.kT) == pytest.approx(60.0 * units.kB)
    dyn.run(3)  # the run goes on with the settings it had
    assert np.isfinite(atoms.get_momenta()).all()
    langevin = md.Langevin(_argon_atoms(argon), DT, temperature_K=60.0, friction=0.02 / units.fs, seed=0)
    with pytest.raises(ValueError, match="friction: must be finite and >= 0"):
        langevin.set_friction(-1.0)
    langevin.set_temperature(temperature_K=0.0)  # Langevin quenches at 0 K: allowed


def test_setters_change_the_run_from_the_next_step_as_ases_do(argon):
    # an annealing ramp: set_temperature between runs moves the thermostat's target, no recompile
    atoms = _argon_atoms(argon)
    dyn = md.Langevin(atoms, DT, temperature_K=20.0, friction=0.2 / units.fs, seed=2)
    dyn.run(100)
    cold = atoms.get_temperature()
    dyn.set_temperature(temperature_K=200.0)
    temperatures = []
    dyn.attach(lambda: temperatures.append(atoms.get_temperature()), 5)
    dyn.run(200)
    assert cold < 60.0 and np.mean(temperatures[-20:]) == pytest.approx(200.0, rel=0.35)
    assert dyn.compile_count <= 1
    dyn.set_friction(0.01 / units.fs)
    assert float(dyn.simulation.params.friction) == pytest.approx(0.01 / units.fs)
    with pytest.raises(TypeError, match="temperature_K="):
        dyn.set_temperature(200 * units.kB)
    with pytest.raises(AttributeError, match="a langevin run has no barostat"):
        dyn.set_pressure(pressure_au=0.0)
    nve = md.VelocityVerlet(_argon_atoms(argon), DT)
    with pytest.raises(AttributeError, match="a nve run has no thermostat"):
        nve.set_temperature(temperature_K=300.0)
    nve.set_timestep(2 * DT)
    assert nve.dt == 2 * DT and float(nve.simulation.params.dt) == 2 * DT


def test_an_observer_removed_from_dyn_observers_is_not_called(argon):
    atoms = _argon_atoms(argon)
    calls = []
    dyn = md.VelocityVerlet(atoms, DT)
    dyn.attach(lambda: calls.append("kept"), 2)
    dyn.attach(lambda: calls.append("removed"), 2)
    dyn.run(2)
    assert calls == ["kept", "removed"] * 2  # steps 0 and 2
    dyn.observers.pop()  # ASE's way to detach
    calls.clear()
    dyn.run(4)
    assert calls == ["kept", "kept"]


def test_insert_observer_calls_in_list_order_as_ase(argon):
    atoms = _argon_atoms(argon)
    calls = []
    dyn = md.VelocityVerlet(atoms, DT)
    dyn.attach(lambda: calls.append(("a", dyn.nsteps)), 1)
    dyn.insert_observer(lambda tag: calls.append((tag, dyn.nsteps)), 0, 2, "b")  # ASE's signature
    dyn.run(3)
    assert calls == [("b", 0), ("a", 0), ("a", 1), ("b", 2), ("a", 2), ("a", 3)]
    dyn.observers.reverse()  # a reordered list is followed
    calls.clear()
    dyn.run(1)
    assert calls == [("a", 4), ("b", 4)]


def test_irun_yields_every_step_and_lands_where_run_does(argon):
    a, b = _argon_atoms(argon), _argon_atoms(argon)
    seen = []
    dyn = md.VelocityVerlet(a, DT)
    dyn.attach(lambda: seen.append(dyn.get_number_of_steps()), 1)
    done = list(dyn.irun(4))
    assert done == [False, False, False, False, True] and seen == [0, 1, 2, 3, 4]  # step 0 once
    md.VelocityVerlet(b, DT).run(4)
    _assert_same_point(a, b, atol=1e-12)
    assert dyn.max_steps == 4
