"""`mlpot eval --worst N` names the frames with the largest errors, with errors that are theirs."""

import json

import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from conftest import ethanol, small_painn

from mlpot.cli import main
from mlpot.training.evaluation import evaluate_files

SPECIES = (1, 6, 8)


def _labelled(atoms, oracle, energy=True, forces=True, config_type=None):
    """``atoms`` labelled by another model ('DFT'), with a label left out where asked."""
    pred = oracle.predict(atoms)
    atoms.calc = SinglePointCalculator(
        atoms,
        energy=float(pred.energy[0]) if energy else None,
        forces=np.asarray(pred.forces)[: len(atoms)] if forces else None,
    )
    if config_type:
        atoms.info["config_type"] = config_type
    return atoms


@pytest.fixture(scope="module")
def two_files(tmp_path_factory):
    """Two files of 9-, 5- and 3-atom molecules; one frame without forces, one without energy."""
    folder = tmp_path_factory.mktemp("worst")
    oracle = small_painn(SPECIES, seed=7)
    shapes = [ethanol(), molecule("CH4"), molecule("H2O"), ethanol(), molecule("CH3OH")]
    frames = []
    for k, atoms in enumerate(shapes):
        atoms.rattle(0.03 * (k + 1), seed=20 + k)  # growing distortion: growing errors, distinct ranks
        frames.append(_labelled(atoms, oracle, energy=k != 3, forces=k != 1, config_type=("a", "b", None, "a", "b")[k]))
    write(folder / "one.xyz", frames[:2])
    write(folder / "two.xyz", frames[2:])
    return folder, [folder / "one.xyz", folder / "two.xyz"], frames


def test_each_listed_frame_carries_its_own_errors_worst_first(two_files):
    _, paths, frames = two_files
    model = small_painn(SPECIES, seed=1)
    worst = evaluate_files(model, paths, worst=10)[0]["worst_frames"]
    names = [f"{paths[0]}, frame 0", f"{paths[0]}, frame 1", f"{paths[1]}, frame 0", f"{paths[1]}, frame 1"]
    names.append(f"{paths[1]}, frame 2")
    with_forces = [k for k in range(5) if k != 1]
    assert len(worst) == len(with_forces)  # frames without a force label are not ranked
    by_name = {row["where"]: row for row in worst}
    for k in with_forces:
        atoms, row = frames[k], by_name[names[k]]
        pred = model.predict(atoms)
        error = np.asarray(pred.forces)[: len(atoms)] - atoms.get_forces()
        assert row["atoms"] == len(atoms)
        # (rel 1e-6: the extxyz file holds the labels to ~10 digits)
        assert row["forces_rmse"] == pytest.approx(np.sqrt(np.mean(error**2)), rel=1e-6)
        assert row["forces_max_error"] == pytest.approx(np.abs(error).max(), rel=1e-6)
        if k == 3:
            assert row["energy_error_per_atom"] is None  # no energy label
        else:
            expected = (float(pred.energy[0]) - atoms.get_potential_energy()) / len(atoms)
            assert row["energy_error_per_atom"] == pytest.approx(expected, rel=1e-6, abs=1e-9)
    rmse = [row["forces_rmse"] for row in worst]
    assert rmse == sorted(rmse, reverse=True) and rmse[0] > rmse[-1]
    assert evaluate_files(model, paths, worst=2)[0]["worst_frames"] == worst[:2]
    # grouping changes the order frames are predicted in, not whose errors are whose
    assert evaluate_files(model, paths, group_by="config_type", worst=10)[0]["worst_frames"] == worst
    assert "worst_frames" not in evaluate_files(model, paths)[0]


def test_frames_with_energies_only_rank_by_the_energy_error(tmp_path):
    oracle, model = small_painn(SPECIES, seed=7), small_painn(SPECIES, seed=1)
    frames = [_labelled(molecule(name), oracle, forces=False) for name in ("CH4", "H2O", "CH3OH")]
    write(tmp_path / "e.xyz", frames)
    worst = evaluate_files(model, tmp_path / "e.xyz", worst=3)[0]["worst_frames"]
    errors = [abs(row["energy_error_per_atom"]) for row in worst]
    assert len(worst) == 3 and errors == sorted(errors, reverse=True)
    assert all(row["forces_rmse"] is None for row in worst)
    for row in worst:  # each row's error is its own frame's
        atoms = frames[int(row["where"].rsplit("frame ", 1)[1])]
        expected = (float(model.predict(atoms).energy[0]) - atoms.get_potential_energy()) / len(atoms)
        assert row["atoms"] == len(atoms)
        assert row["energy_error_per_atom"] == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert min(errors) > 1e-6  # the two models differ: a ranking of real errors


def test_eval_cli_prints_and_writes_the_worst_frames(two_files, capsys):
    folder, paths, _ = two_files
    model_file = folder / "model.mlpot"
    small_painn(SPECIES, seed=1).save(model_file)
    report = folder / "eval.json"
    args = ["eval", str(model_file), *map(str, paths), "--json", str(report), "--worst", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "worst 2 frames by force RMSE:" in out
    listed = json.loads(report.read_text())["worst_frames"]
    assert len(listed) == 2 and all(row["where"] in out for row in listed)
    assert listed[0]["forces_rmse"] >= listed[1]["forces_rmse"] > 0
    with pytest.raises(SystemExit) as exit_info:  # argparse: usage and one error line, code 2
        main(["eval", str(model_file), str(paths[0]), "--worst", "0"])
    assert exit_info.value.code == 2 and "--worst: must be a positive integer" in capsys.readouterr().err
