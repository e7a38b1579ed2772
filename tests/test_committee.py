"""A committee (mean per-atom energy of trained models) in the one model slot: physics, file, CLI, MD."""

from __future__ import annotations

import json
import re
import warnings

import ase.io
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.singlepoint import SinglePointCalculator
from conftest import ethanol, finite_difference_stress, small_painn, triclinic_si

import mlpot
from md.forces import potential_forces
from mlpot.cli import main
from mlpot.deviation import frame_deviations
from mlpot.graph import neighbour_pairs
from mlpot.models.committee import assemble, members
from mlpot.training.config import from_dict

SPECIES = (1, 6, 8, 14)


@pytest.fixture(scope="module")
def singles():
    """Three independent small PaiNNs: different seeds, scales and references; one float32 network and
    one with a ZBL core, so each member's own float policy and core are checked to survive."""
    a = small_painn(SPECIES, seed=0)
    b = small_painn(SPECIES, seed=1, dtype="float32")
    c = small_painn(SPECIES, seed=2)
    radii = [[0.0] * 4 for _ in SPECIES]
    radii[3][3] = 2.0  # Si-Si core inside 2 Å
    c = mlpot.Potential(c.config.replace(repulsion_radii=radii), c.params)
    return [a, b, c]


def squeezed_si():
    """Triclinic Si with one pair at 1.9 Å, inside member c's core."""
    atoms = triclinic_si()
    atoms.positions[1] = atoms.positions[0] + [1.1, 1.1, 1.0]
    return atoms


@pytest.mark.parametrize("atoms", [squeezed_si(), ethanol()], ids=["periodic", "molecule"])
def test_energy_forces_stress_are_the_members_means(singles, atoms):
    committee = assemble(singles)
    got = committee.predict(atoms)
    want = [p.predict(atoms) for p in singles]
    n = len(atoms)
    # rtol 1e-5: member b's float32 network rounds differently inside the committee's program
    close = {"rtol": 1e-5, "atol": 1e-8}
    assert float(got.energy[0]) == pytest.approx(np.mean([float(w.energy[0]) for w in want]), rel=1e-6)
    np.testing.assert_allclose(got.forces[:n], np.mean([w.forces[:n] for w in want], axis=0), **close)
    np.testing.assert_allclose(got.energies[:n], np.mean([w.energies[:n] for w in want], axis=0), **close)
    if atoms.pbc.all():
        np.testing.assert_allclose(got.stress[0], np.mean([w.stress[0] for w in want], axis=0), **close)
    spread = np.std([w.forces[:n] for w in want], axis=0)
    assert spread.max() > 1e-2  # the members disagree, so a mean that dropped or repeated one would show


def test_members_with_other_cutoffs_keep_their_own(singles):
    """The committee's list is built with the largest cutoff; the 4 Å member must ignore the pairs
    between 4 and 5.5 Å (its envelope is zero there), so the mean equals the members' own predictions."""
    longer = small_painn(SPECIES, cutoff=5.5, seed=3)
    committee = assemble([singles[0], longer])
    assert committee.cutoff == 5.5
    atoms = squeezed_si()
    assert len(neighbour_pairs(atoms, 5.5)[0]) > len(neighbour_pairs(atoms, 4.0)[0])  # pairs only one member sees
    got, want = committee.predict(atoms), [p.predict(atoms) for p in (singles[0], longer)]
    assert float(got.energy[0]) == pytest.approx(np.mean([float(w.energy[0]) for w in want]), rel=1e-12)
    np.testing.assert_allclose(got.stress[0], np.mean([w.stress[0] for w in want], axis=0), atol=1e-10)


def test_committee_stress_is_the_strain_derivative(singles):
    committee = assemble([singles[0], singles[2]])  # float64 members: finite differences resolve 1e-7
    atoms = squeezed_si()
    got = np.asarray(committee.predict(atoms).stress[0])
    want = finite_difference_stress(lambda a: float(committee.predict(a).energy[0]), atoms)
    np.testing.assert_allclose(got, want, atol=1e-7)
    assert np.abs(want).max() > 1e-3


def test_file_round_trip_and_members(singles, tmp_path):
    committee = assemble(singles)
    path = tmp_path / "committee.mlpot"
    committee.save(path)
    loaded = mlpot.load(path)
    assert loaded.config.name == "committee" and loaded.cutoff == singles[0].cutoff
    atoms = squeezed_si()
    np.testing.assert_array_equal(loaded.predict(atoms).forces, committee.predict(atoms).forces)
    back = members(loaded)
    assert len(back) == 3 and back[1].config.dtype == "float32" and back[2].config.repulsion_radii[3][3] == 2.0
    for single, member in zip(singles, back):
        assert member.config == single.config
        np.testing.assert_array_equal(member.predict(atoms).forces, single.predict(atoms).forces)
    assert members(singles[0]) == [singles[0]]


def test_a_committee_of_parameter_free_members_keeps_them_in_its_file(tmp_path):
    from md.toy import argon_crystal, argon_potential

    committee = assemble([argon_potential(8.5), argon_potential(6.0)])  # Lennard-Jones: params {}
    committee.save(tmp_path / "lj.mlpot")
    loaded = mlpot.load(tmp_path / "lj.mlpot")
    assert len(members(loaded)) == 2
    atoms = argon_crystal(2, temperature_K=30.0, seed=1)
    np.testing.assert_allclose(loaded.predict(atoms).forces, committee.predict(atoms).forces, rtol=0, atol=1e-12)


def test_refusals(singles):
    a = singles[0]
    with pytest.raises(ValueError, match="at least two"):
        assemble([a])
    with pytest.raises(ValueError, match=r"model 2 has species H C O, model 1 has H C O Si:"):
        assemble([a, small_painn((1, 6, 8))])
    with pytest.warns(UserWarning, match="model 1 and model 2 are the same model"):
        assemble([a, mlpot.Potential(a.config, a.params)])
    # a member fitted to labels with another energy zero: forces may agree, the mean energy is far from both
    shifted = np.add(singles[1].config.reference_energies, [0.0, 0.0, 2.0, 0.0])
    other_zero = mlpot.Potential(singles[1].config.replace(reference_energies=tuple(shifted)), singles[1].params)
    with pytest.warns(UserWarning, match="reference energies for O differ by 2 eV"):
        assemble([a, other_zero])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assemble(singles)  # trained apart on the same labels: silent
    with pytest.raises(ValueError, match="model 1 is already a committee"):
        assemble([assemble(singles[:2]), a])
    with pytest.raises(ValueError, match="assembled from trained models"):
        mlpot.Potential.create(assemble(singles[:2]).config)
    with pytest.raises(ValueError, match=r"mlpot committee OUT A B"):
        from_dict({"train_file": "x.xyz", "model": {"name": "committee"}})


def test_cli_builds_a_committee_that_eval_scores(singles, tmp_path, capsys):
    paths = []
    for k, single in enumerate(singles[::2]):  # float64 members: eval's batches match predict to 1e-9
        paths.append(tmp_path / f"m{k}.mlpot")
        single.save(paths[-1])
    frames = []
    for seed in range(3):
        atoms = ethanol()
        atoms.rattle(0.05, seed=seed)
        atoms.calc = SinglePointCalculator(atoms, energy=-5.0 - seed, forces=np.zeros((len(atoms), 3)))
        frames.append(atoms)
    data = tmp_path / "frames.xyz"
    ase.io.write(data, frames)
    out = tmp_path / "committee.mlpot"
    assert main(["committee", str(out), *map(str, paths)]) == 0
    assert "committee of 2 models" in capsys.readouterr().out
    json_path = tmp_path / "eval.json"
    assert main(["eval", str(out), str(data), "--json", str(json_path), "--plot", str(tmp_path / "p.png")]) == 0
    metrics = json.loads(json_path.read_text())
    committee = mlpot.load(out)
    predicted = [np.asarray(committee.predict(f).forces[: len(f)]) for f in ase.io.read(data, ":")]
    assert metrics["forces_mae"] == pytest.approx(np.mean(np.abs(np.concatenate(predicted))), rel=1e-9)
    assert main(["committee", str(tmp_path / "c2.mlpot"), str(paths[0])]) == 2  # one model: a clear error
    assert "at least two" in capsys.readouterr().err
    # the output comes first: with it forgotten, the first model would be replaced. Refused, kept.
    before = paths[0].read_bytes()
    assert main(["committee", *map(str, paths), str(paths[1])]) == 2
    assert f"committee output {paths[0]} exists: --overwrite replaces it" in capsys.readouterr().err
    assert main(["committee", "--overwrite", str(paths[0]), *map(str, paths)]) == 2  # never an input
    assert "is one of its models: the first name is the output" in capsys.readouterr().err
    assert paths[0].read_bytes() == before
    # errors name the members' files, not their positions
    other = tmp_path / "other-species.mlpot"
    small_painn((1, 6, 8)).save(other)
    assert main(["committee", "--overwrite", str(out), str(paths[0]), str(other)]) == 2
    assert f"{other} has species H C O, {paths[0]} has" in capsys.readouterr().err
    assert main(["committee", "--overwrite", str(out), *map(str, paths)]) == 0
    # --members: each member's own errors on the same frames, beside the committee's
    plot = str(tmp_path / "p.png")
    assert main(["eval", str(out), str(data), "--members", "--json", str(json_path), "--plot", plot]) == 0
    assert re.search(
        r"member 2: energy MAE [\d.]+ meV/structure \([\d.]+ meV/atom\), forces MAE", capsys.readouterr().out
    )
    rows = json.loads(json_path.read_text())["members"]
    for row, single in zip(rows, singles[::2]):
        own = [np.asarray(single.predict(f).forces[: len(f)]) for f in ase.io.read(data, ":")]
        assert row["forces_mae"] == pytest.approx(np.mean(np.abs(np.concatenate(own))), rel=1e-9)
    assert len(rows) == 2 and rows[0]["forces_mae"] != rows[1]["forces_mae"]
    frames = len(ase.io.read(data, ":"))  # a member's row says on how many frames, as the committee's does
    assert all(row["n_frames"] == row["n_frames_forces"] == frames for row in rows)
    assert main(["eval", str(paths[0]), str(data), "--members", "--plot", plot]) == 2
    assert "is a single model, not a committee" in capsys.readouterr().err


def test_md_force_fn_and_ase_calculator_use_the_mean(singles):
    committee = assemble(singles[::2])  # float64 members: the programs agree to 1e-10
    atoms = squeezed_si()
    forces = potential_forces(committee, atoms, skin=0.5, compute_stress=True)
    args = forces.build(atoms.positions, atoms.cell.array)
    energy, f, stress = forces.force_fn(jnp.asarray(atoms.positions), jnp.asarray(atoms.cell.array), args)
    want = committee.predict(atoms)
    assert float(energy) == pytest.approx(float(want.energy[0]), abs=1e-10)
    np.testing.assert_allclose(f, want.forces[: len(atoms)], atol=1e-10)
    np.testing.assert_allclose(stress, want.stress[0], atol=1e-10)
    atoms.calc = mlpot.Calculator(committee)
    assert atoms.get_potential_energy() == pytest.approx(float(want.energy[0]), abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), want.forces[: len(atoms)], atol=1e-10)
    np.testing.assert_allclose(atoms.get_stress(voigt=False), want.stress[0], atol=1e-12)


def test_calculator_reports_the_members_spread(singles):
    """energy_std and forces_std are the population std over members; a single model has none."""
    atoms = ethanol()
    atoms.calc = mlpot.Calculator(assemble(singles))
    single = [p.predict(atoms) for p in singles]
    n = len(atoms)
    assert atoms.calc.get_property("energy_std", atoms) == pytest.approx(
        np.std([float(w.energy[0]) for w in single]), rel=1e-5
    )
    member_forces = np.array([w.forces[:n] for w in single])
    np.testing.assert_allclose(atoms.calc.get_property("forces_std", atoms), member_forces.std(axis=0), rtol=1e-4)
    np.testing.assert_allclose(atoms.get_forces(), member_forces.mean(axis=0), rtol=1e-5, atol=1e-8)
    assert atoms.calc.get_property("energy_std", atoms) > 1e-3  # a real spread
    compiled = atoms.calc.compile_count  # at most one program per member (others' tests may share them)
    assert compiled <= 3
    atoms.rattle(0.02, seed=9)
    atoms.get_forces()
    assert atoms.calc.compile_count == compiled  # a new geometry reuses them
    atoms.calc = mlpot.Calculator(singles[0])
    atoms.get_potential_energy()
    with pytest.raises(PropertyNotImplementedError):
        atoms.calc.get_property("forces_std", atoms)


def _deviation(potentials, atoms) -> float:
    """DeePMD-kit's max_devi_f from the members' own predictions."""
    forces = np.array([p.predict(atoms).forces[: len(atoms)] for p in potentials])
    return float(np.sqrt(((forces - forces.mean(axis=0)) ** 2).sum(axis=2).mean(axis=0)).max())


def test_md_logs_carry_the_committee_deviation(singles, tmp_path):
    import io

    from ase import units

    import md

    pair = singles[::2]
    path = tmp_path / "committee.mlpot"
    assemble(pair).save(path)
    start = tmp_path / "start.xyz"
    ase.io.write(start, ethanol())
    log, traj = tmp_path / "md.csv", tmp_path / "md.traj"
    args = ["md", str(path), str(start), "--steps", "20", "--interval", "10", "--temperature", "100", "--dt", "0.1"]
    assert main([*args, "--log", str(log), "--traj", str(traj)]) == 0
    rows = log.read_text().splitlines()
    assert rows[0].split(",")[-1] == "force_dev_max_eVA" and len(rows) == 4  # header, steps 0, 10, 20
    frames = ase.io.read(traj, ":")
    for row, frame in zip(rows[1:], frames):
        assert float(row.split(",")[-1]) == pytest.approx(_deviation(pair, frame), rel=1e-6)
    # the ASE-style drivers' log too; a single model's log has no such column
    atoms = ethanol()
    stream = io.StringIO()
    md.VelocityVerlet(atoms, 0.1 * units.fs, potential=path, logfile=stream, loginterval=5).run(5)
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("force_dev_max_eVA") and len(lines) == 3
    assert float(lines[-1].split(",")[-1]) == pytest.approx(_deviation(pair, atoms), rel=1e-6)
    single = pair[0]
    single.save(tmp_path / "single.mlpot")
    assert (
        main(["md", str(tmp_path / "single.mlpot"), str(start), "--steps", "0", "--log", str(tmp_path / "s.csv")]) == 0
    )
    assert "force_dev" not in (tmp_path / "s.csv").read_text()


def _md_like_frames(count: int) -> list:
    """Ethanol ever more distorted: the members' deviation grows along the list."""
    frames = []
    for k in range(count):
        atoms = ethanol()
        atoms.rattle(0.02 + 0.03 * k, seed=k)
        frames.append(atoms)
    return frames


def test_deviation_cli_reports_and_selects_the_band(singles, tmp_path, capsys):
    pair = singles[::2]
    path = tmp_path / "committee.mlpot"
    assemble(pair).save(path)
    frames = _md_like_frames(8)
    data = tmp_path / "traj.xyz"
    ase.io.write(data, frames)
    frames = ase.io.read(data, ":")
    want = np.array([_deviation(pair, f) for f in frames])
    lo, hi = np.sort(want)[2], np.sort(want)[6]  # frames ranked 3rd to 6th lie in [lo, hi)
    band = [k for k in range(8) if lo <= want[k] < hi]
    assert len(band) == 4
    out, report = tmp_path / "label.xyz", tmp_path / "dev.json"
    args = ["deviation", str(path), str(data), "--lo", str(lo), "--hi", str(hi), "--select", str(out)]
    assert main([*args, "--json", str(report)]) == 0
    assert "8 frames: 2 below lo" in capsys.readouterr().out
    document = json.loads(report.read_text())
    np.testing.assert_allclose([row["force_dev_max"] for row in document["per_frame"]], want, rtol=1e-6)
    assert (document["below_lo"], document["candidates"], document["at_or_above_hi"]) == (2, 4, 2)
    picked = ase.io.read(out, ":")
    assert [a.info["source"] for a in picked] == [f"{data}, frame {k}" for k in band]
    for atoms, k in zip(picked, band):
        np.testing.assert_allclose(atoms.positions, frames[k].positions, atol=1e-8)
        assert atoms.info["force_dev_max"] == pytest.approx(want[k], rel=1e-6)
    assert (tmp_path / "dev.deviation.png").stat().st_size > 0
    # --max: a seeded subset of the band, in file order; the same seed picks the same frames
    assert main([*args[:-1], str(tmp_path / "two.xyz"), "--max", "2", "--seed", "3"]) == 0
    two = [a.info["source"] for a in ase.io.read(tmp_path / "two.xyz", ":")]
    assert len(two) == 2 and set(two) <= {f"{data}, frame {k}" for k in band} and two == sorted(two)
    assert main([*args[:-1], str(tmp_path / "again.xyz"), "--max", "2", "--seed", "3"]) == 0
    assert [a.info["source"] for a in ase.io.read(tmp_path / "again.xyz", ":")] == two


def test_deviation_cli_refusals(singles, tmp_path, capsys):
    single = tmp_path / "single.mlpot"
    singles[0].save(single)
    data = tmp_path / "traj.xyz"
    ase.io.write(data, _md_like_frames(2))
    assert main(["deviation", str(single), str(data)]) == 2
    assert "is a single model: a deviation needs a committee" in capsys.readouterr().err
    committee = tmp_path / "committee.mlpot"
    assemble(singles[::2]).save(committee)
    assert main(["deviation", str(committee), str(data), "--lo", "0.2", "--hi", "0.1"]) == 2
    assert "need 0 <= --lo < --hi" in capsys.readouterr().err
    gold = tmp_path / "gold.xyz"
    ase.io.write(gold, Atoms("Au2", positions=[[0, 0, 0], [0, 0, 2.5]]))
    assert main(["deviation", str(committee), str(gold)]) == 2
    assert f"{gold}, frame 0" in capsys.readouterr().err  # an element the model does not know: file and frame
    before = data.read_bytes()
    assert main(["deviation", str(committee), str(data), "--select", str(data)]) == 2
    assert "--select" in capsys.readouterr().err and data.read_bytes() == before
    model = committee.read_bytes()  # the model is an input too: --json over it replaced it
    assert main(["deviation", str(committee), str(data), "--json", str(committee)]) == 2
    assert f"--json {committee} is the input file {committee}" in capsys.readouterr().err
    assert committee.read_bytes() == model
    same = tmp_path / "same.xyz"  # two outputs on one file: the selection was lost under the JSON
    assert main(["deviation", str(committee), str(data), "--select", str(same), "--json", str(same)]) == 2
    assert f"--json {same} is the output of --select" in capsys.readouterr().err
    assert main(["deviation", str(committee), str(data), "--select", str(tmp_path / "pick.traj")]) == 2
    assert "written as extxyz: name it .xyz or .extxyz" in capsys.readouterr().err
    assert main(["deviation", str(committee), str(data), "--max", "1", "--seed", "-1"]) == 2
    assert "--seed must be >= 0" in capsys.readouterr().err


def test_deviation_counts_a_collapsed_frame_as_discarded_and_scores_the_rest(singles, tmp_path, capsys):
    """A run that fell apart (two atoms on one point) must not stop the scoring of its other frames:
    the broken frame counts at or above --hi (DP-GEN discards it), named in a warning."""
    committee = tmp_path / "committee.mlpot"
    assemble(singles[::2]).save(committee)
    frames = _md_like_frames(3)
    frames[1].positions[1] = frames[1].positions[0]
    ase.io.write(broken := tmp_path / "broken.xyz", frames)
    report = tmp_path / "dev.json"
    with pytest.warns(UserWarning, match=rf"1 of 3 frame\(s\) could not be evaluated .*first: {broken}, frame 1: "):
        assert main(["deviation", str(committee), str(broken), "--lo", "0", "--hi", "10", "--json", str(report)]) == 0
    assert "3 frames: 0 below lo 0 eV/Å, 2 candidates, 1 at or above hi 10 eV/Å (1 not evaluable)" in (
        capsys.readouterr().out
    )
    document = json.loads(report.read_text())
    assert (document["candidates"], document["at_or_above_hi"], document["not_evaluable"]) == (2, 1, 1)
    rows = document["per_frame"]
    assert rows[1]["force_dev_max"] is None  # inf, as strict JSON
    assert [row["evaluable"] for row in rows] == [True, False, True]
    for k in (0, 2):
        assert rows[k]["force_dev_max"] == pytest.approx(_deviation(singles[::2], frames[k]), rel=1e-6)
    assert document["force_dev_max_percentiles_eV_per_A"]["max"] == pytest.approx(
        max(rows[0]["force_dev_max"], rows[2]["force_dev_max"])
    )


def test_deviation_scores_frames_whatever_their_unused_labels_and_counts_nan_positions_as_broken(
    singles, tmp_path, capsys
):
    """Deviation reads positions only (and forces with --calibrate): a NaN energy label it never uses
    must not refuse the file, and a frame whose positions blew up to NaN is not evaluable, not an error."""
    committee = tmp_path / "committee.mlpot"
    assemble(singles[::2]).save(committee)
    frames = _md_like_frames(3)
    frames[0].info["energy"] = float("nan")
    frames[2].positions[3] = np.nan
    ase.io.write(path := tmp_path / "run.xyz", frames)
    report = tmp_path / "dev.json"
    with pytest.warns(UserWarning, match=rf"1 of 3 frame\(s\) could not be evaluated .*first: {path}, frame 2: "):
        assert main(["deviation", str(committee), str(path), "--lo", "0", "--hi", "10", "--json", str(report)]) == 0
    rows = json.loads(report.read_text())["per_frame"]
    assert [row["evaluable"] for row in rows] == [True, True, False]
    assert rows[0]["force_dev_max"] == pytest.approx(_deviation(singles[::2], frames[0]), rel=1e-6)
    # a torn trajectory's empty frame is not evaluable either (it stopped the whole pass, naming no frame)
    with pytest.warns(UserWarning, match=r"1 of 3 frame\(s\) could not be evaluated .*first: structure 1: .*no atoms"):
        rows = frame_deviations(assemble(singles[::2]), [frames[0], Atoms(), frames[1]])
    assert np.isinf(rows[1]).all() and np.isfinite(rows[[0, 2]]).all()


def test_deviation_calibrate_compares_with_reference_forces(singles, tmp_path, capsys):
    """With --calibrate, labelled frames also get the committee's real largest atomic error, its rank
    correlation with the deviation and the median error / deviation; only on request, and refused
    without labels."""
    from scipy.stats import spearmanr

    pair = singles[::2]
    path = tmp_path / "committee.mlpot"
    assemble(pair).save(path)
    reference = singles[1]  # "DFT": another model's forces
    frames = _md_like_frames(6)
    for atoms in frames:
        atoms.calc = SinglePointCalculator(atoms, forces=np.asarray(reference.predict(atoms).forces[: len(atoms)]))
    data = tmp_path / "labelled.xyz"
    ase.io.write(data, frames)
    frames = ase.io.read(data, ":")
    report = tmp_path / "cal.json"
    assert main(["deviation", str(path), str(data), "--calibrate", "--json", str(report)]) == 0
    assert "rank correlation of deviation and error" in capsys.readouterr().out
    document = json.loads(report.read_text())
    committee = assemble(pair)
    errors = [
        np.linalg.norm(np.asarray(committee.predict(a).forces[: len(a)]) - a.get_forces(), axis=1).max() for a in frames
    ]
    got = [row["force_err_max"] for row in document["per_frame"]]
    np.testing.assert_allclose(got, errors, rtol=1e-6)
    deviations = [row["force_dev_max"] for row in document["per_frame"]]
    assert document["calibration"]["spearman_dev_max_err_max"] == pytest.approx(spearmanr(deviations, errors).statistic)
    assert document["calibration"]["median_err_over_dev"] == pytest.approx(np.median(np.divide(errors, deviations)))
    # without the flag the labels are not read (an MD trajectory's forces are the model's own)
    assert main(["deviation", str(path), str(data), "--json", str(report)]) == 0
    assert "calibration" not in json.loads(report.read_text())
    unlabelled = tmp_path / "plain.xyz"
    ase.io.write(unlabelled, _md_like_frames(2))
    assert main(["deviation", str(path), str(unlabelled), "--calibrate"]) == 2
    assert "--calibrate: no frame of" in capsys.readouterr().err
    own = [a.copy() for a in frames]  # an mlpot md trajectory: the committee's own forces, errors of 1e-15
    for atoms in own:
        atoms.calc = SinglePointCalculator(atoms, forces=np.asarray(committee.predict(atoms).forces[: len(atoms)]))
    ase.io.write(own_path := tmp_path / "own.xyz", own)
    with pytest.warns(UserWarning, match=r"--calibrate: the force labels are the committee's own forces"):
        assert main(["deviation", str(path), str(own_path), "--calibrate", "--json", str(report)]) == 0
    assert "calibration" not in json.loads(report.read_text())
    ase.io.write(few := tmp_path / "few.xyz", frames[:2])  # labelled, but too few to rank: said, not silent
    with pytest.warns(UserWarning, match=r"--calibrate: 2 evaluable frame\(s\) with force labels, 3 needed"):
        assert main(["deviation", str(path), str(few), "--calibrate"]) == 0
    # the reference forces under another name (MACE's REF_forces): the same errors with --forces-key
    renamed = ase.io.read(data, ":")
    for atoms in renamed:
        atoms.arrays["REF_forces"] = atoms.get_forces()
        atoms.calc = None
    ase.io.write(tmp_path / "ref.xyz", renamed)
    named = tmp_path / "named.json"
    assert main(["deviation", str(path), str(tmp_path / "ref.xyz"), "--calibrate", "--forces-key", "REF_forces",
                 "--json", str(named)]) == 0  # fmt: skip
    np.testing.assert_allclose([row["force_err_max"] for row in json.loads(named.read_text())["per_frame"]], errors)


def test_md_stops_when_the_committee_deviation_passes_the_limit(singles, tmp_path, capsys):
    """--max-force-dev: the run stops, naming the step, at the first checked frame above the limit; the
    frames and log lines up to it are written. A single model is refused before any step."""
    pair = singles[::2]
    path = tmp_path / "committee.mlpot"
    assemble(pair).save(path)
    start = tmp_path / "start.xyz"
    ase.io.write(start, ethanol())
    log = tmp_path / "md.csv"
    base = ["md", str(path), str(start), "--interval", "5", "--temperature", "100", "--dt", "0.1", "--seed", "2"]
    assert main([*base, "--steps", "20", "--log", str(log)]) == 0
    rows = [line.split(",") for line in log.read_text().splitlines()[1:]]
    dev = [float(row[-1]) for row in rows]  # steps 0, 5, 10, 15, 20
    stop = next((k for k in range(1, len(dev)) if dev[k] > max(dev[:k])), 0)  # the first new maximum
    limit = (max(dev[:stop]) + dev[stop]) / 2 if stop else dev[0] / 2  # passed first at row `stop`
    again = tmp_path / "again.csv"
    assert main([*base, "--steps", "20", "--log", str(again), "--max-force-dev", str(limit)]) == 1
    err = capsys.readouterr().err
    assert f"MD stopped at step {5 * stop}: committee force deviation" in err and "--max-force-dev" in err
    assert len(again.read_text().splitlines()) == 1 + stop + 1  # header, the rows up to and with the stop
    # without a log, and already at the start frame: a one-line error, not a traceback
    assert main([*base, "--steps", "20", "--max-force-dev", str(dev[0] / 2)]) == 1
    assert "MD stopped at step 0: committee force deviation" in capsys.readouterr().err
    single = tmp_path / "single.mlpot"
    pair[0].save(single)
    assert main(["md", str(single), str(start), "--steps", "5", "--max-force-dev", "0.1"]) == 2
    assert "--max-force-dev needs a committee model" in capsys.readouterr().err


def test_calibration_says_why_there_is_none_instead_of_printing_nonsense():
    from mlpot.deviation import calibration

    errors = np.array([0.05, 0.2, 0.1, 0.3])
    assert "the members agree on 4 of 4" in calibration(np.zeros(4), errors)  # a ratio of 1e11 before
    assert "committee's own forces" in calibration(np.array([0.01, 0.02, 0.03, 0.04]), np.full(4, 1e-15))
    assert "3 needed" in calibration(np.ones(4), np.array([0.1, np.nan, np.nan, 0.2]))
    assert "no error to rank" in calibration(np.array([0.01, 0.02, 0.03]), np.full(3, 0.1))  # rho was NaN
    some = calibration(np.array([0.0, 0.02, 0.04, 0.08]), errors)  # a frame without spread is left out
    assert some["labelled_frames"] == 3 and some["median_err_over_dev"] == pytest.approx(np.median([10, 2.5, 3.75]))


def test_an_assembled_committee_and_its_saved_file_are_the_same_model(singles, tmp_path):
    # The member configs kept tuples in memory and lists once loaded: the MD driver refused a calculator
    # of the saved file beside the assembled committee as "another model".
    import md
    from mlpot.potential import same_model

    committee = assemble(singles)
    path = tmp_path / "committee.mlpot"
    committee.save(path)
    loaded = mlpot.load(path)
    assert same_model(committee, loaded) and same_model(loaded, committee)
    assert not same_model(committee, assemble(singles[:2]))
    odd = mlpot.Potential(
        singles[0].config.replace(hyperparameters={**singles[0].config.hyperparameters, "x": np.int64(1)}),
        singles[0].params,
    )
    assert not same_model(odd, singles[0])  # a numpy number set in memory: an answer, not a TypeError
    atoms = squeezed_si()
    atoms.calc = mlpot.Calculator(committee)
    md.VelocityVerlet(atoms, 0.5, potential=str(path)).run(1)


def test_deviation_selection_keeps_reference_labels_and_writes_nothing_for_no_candidates(singles, tmp_path, capsys):
    # --select with --calibrate dropped the DFT labels the user had said the frames carry; an empty band
    # replaced the file with 0 bytes, which ASE cannot read back
    pair = singles[::2]
    path = tmp_path / "committee.mlpot"
    assemble(pair).save(path)
    frames = _md_like_frames(4)
    for atoms in frames:
        forces = np.asarray(singles[1].predict(atoms).forces[: len(atoms)])
        atoms.calc = SinglePointCalculator(atoms, energy=-1.5, forces=forces)
    ase.io.write(data := tmp_path / "labelled.xyz", frames)
    picked = tmp_path / "picked.xyz"
    args = ["deviation", str(path), str(data), "--lo", "0", "--hi", "1e9", "--select", str(picked)]
    assert main([*args, "--calibrate"]) == 0
    for atoms, original in zip(ase.io.read(picked, ":"), frames):
        np.testing.assert_allclose(atoms.get_forces(), original.get_forces(), atol=1e-8)
        assert atoms.get_potential_energy() == pytest.approx(-1.5)
    assert main(args) == 0  # without --calibrate the labels may be the model's own: written bare
    assert all(atoms.calc is None for atoms in ase.io.read(picked, ":"))
    before = picked.read_bytes()
    assert main(["deviation", str(path), str(data), "--lo", "1e8", "--hi", "1e9", "--select", str(picked)]) == 0
    assert f"no frames to label: {picked} not written" in capsys.readouterr().out and picked.read_bytes() == before


def test_deviation_refuses_an_unknown_element_before_scoring_and_plots_no_refused_calibration(
    singles, tmp_path, capsys, monkeypatch
):
    from mlpot import deviation

    path = tmp_path / "committee.mlpot"
    assemble(singles[::2]).save(path)
    frames = _md_like_frames(3)
    ase.io.write(good := tmp_path / "good.xyz", frames)
    ase.io.write(gold := tmp_path / "gold.xyz", Atoms("Au2", positions=[[0, 0, 0], [0, 0, 2.5]]))
    scored = []
    monkeypatch.setattr(deviation, "frame_deviations", lambda *a, **k: scored.append(1))
    assert main(["deviation", str(path), str(good), str(gold)]) == 2
    assert f"{gold}, frame 0" in capsys.readouterr().err and scored == []  # refused before any frame is scored
    monkeypatch.undo()
    # labels that are the committee's own forces: calibration refused, so no error panel (it crashed on
    # frames none of which could be evaluated)
    committee = assemble(singles[::2])
    for atoms in frames:
        atoms.calc = SinglePointCalculator(atoms, forces=np.asarray(committee.predict(atoms).forces[: len(atoms)]))
    ase.io.write(own := tmp_path / "own.xyz", frames)
    panels = []
    real_plot = deviation.plot
    monkeypatch.setattr(deviation, "plot", lambda *a: panels.append(a[-1]) or real_plot(*a))
    with pytest.warns(UserWarning, match="no calibration"):
        assert main(["deviation", str(path), str(own), "--calibrate", "--json", str(tmp_path / "d.json")]) == 0
    assert panels == [None]
