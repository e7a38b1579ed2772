"""`mlpot train | eval | template | cv | learning-curve` end to end on tiny data and a tiny model."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import ase.io
import pytest
import yaml
from test_train_helpers import TINY, molecules, register_tiny, tiny_model

from mlpot.cli import main
from mlpot.training.config import KEYS, from_dict


@pytest.fixture()
def tiny_setup(tmp_path):
    data = tmp_path / "frames.xyz"
    ase.io.write(data, molecules(12, names=("CH4",)))
    config = {
        "train_file": "frames.xyz",
        "valid_fraction": 0.2,
        "model": {"name": register_tiny()},
        "cutoff": 3.0,
        "batch_size": 4,
        "epochs": 2,
        "progress": False,
        "plots": False,
        "output_dir": str(tmp_path / "out"),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return tmp_path, path, data


@pytest.fixture(autouse=True)
def _tiny_model(monkeypatch):
    tiny_model(monkeypatch)


def test_template_is_a_complete_valid_config(capsys):
    assert main(["template"]) == 0
    text = capsys.readouterr().out
    values = yaml.safe_load(text)
    assert set(values) == set(KEYS)
    assert text.count("#") > 20  # commented
    from_dict(values)


def test_unknown_key_is_a_one_line_error_with_a_suggestion(tiny_setup, capsys):
    _tmp_path, path, _ = tiny_setup
    path.write_text(path.read_text() + "lerning_rate: 0.1\n")
    assert main(["train", str(path)]) == 2
    assert "unknown key 'lerning_rate'; did you mean 'learning_rate'?" in capsys.readouterr().err


def test_a_diverged_training_run_exits_non_zero_and_says_what_the_model_holds(tiny_setup, capsys, monkeypatch):
    # `mlpot train ... && mlpot md ...` must stop at a run that diverged in its first epoch.
    from mlpot.training import run as run_mod

    real = run_mod.run_epoch

    def diverge(*args):
        state, row = real(*args)
        return state, {**row, "train_loss": float("nan")}

    monkeypatch.setattr(run_mod, "run_epoch", diverge)
    _, config, _ = tiny_setup
    assert main(["train", str(config)]) == 1
    err = capsys.readouterr().err
    assert "the run diverged (non-finite loss) in epoch 1" in err and "initial parameters (no epoch finished)" in err


def test_train_then_eval_json(tiny_setup, capsys):
    tmp_path, path, data = tiny_setup
    assert main(["train", str(path), "-o", "model.num_basis=3", "-o", "epochs=1"]) == 0
    out = tmp_path / "out"
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["model"]["num_basis"] == 3 and resolved["epochs"] == 1
    assert "validation" in capsys.readouterr().out
    # --resume continues the same run: a second epoch is appended, not a fresh start
    assert main(["train", str(path), "-o", "model.num_basis=3", "-o", "epochs=2", "--resume"]) == 0
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1", "2"]
    report = tmp_path / "eval.json"
    plot = tmp_path / "parity.png"
    assert main(["eval", str(out / "model.mlpot"), str(data), "--json", str(report), "--plot", str(plot)]) == 0
    metrics = json.loads(report.read_text())
    for key in (
        "energy_mae",
        "energy_rmse",
        "energy_mae_per_atom",
        "energy_rmse_per_atom",
        "forces_mae",
        "forces_rmse",
        "n_frames",
    ):
        assert key in metrics
    assert metrics["n_frames"] == 12 and "stress_mae" not in metrics  # no stress labels in these frames
    assert metrics["energy_mae_per_atom"] == pytest.approx(metrics["energy_mae"] / 5)  # all CH4
    assert plot.is_file()
    assert main(["eval", str(out / "model.mlpot"), str(tmp_path / "missing.xyz")]) == 2
    # rerunning the command without --resume would replace the run's checkpoints: refused, nothing touched
    before = {name: (out / name).read_bytes() for name in ("metrics.csv", "model.mlpot", "checkpoints/last.ckpt")}
    capsys.readouterr()
    assert main(["train", str(path), "-o", "model.num_basis=3", "-o", "epochs=1"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert before == {name: (out / name).read_bytes() for name in before}
    assert main(["train", str(path), "-o", "epochs=1", "--resume", "--overwrite"]) == 2
    # --overwrite removes the old run only once the new data have been read: a misspelt file costs nothing
    missing = str(tmp_path / "misspelt.xyz")
    assert main(["train", str(path), "-o", f"train_file={missing}", "-o", "epochs=1", "--overwrite"]) == 2
    assert "misspelt.xyz" in capsys.readouterr().err
    assert before == {name: (out / name).read_bytes() for name in before}
    for name in ("learning_curves.png", "parity_valid.png", "parity_test.png"):  # as a run with plots leaves
        (out / name).write_bytes(b"old")
    capsys.readouterr()
    assert main(["train", str(path), "-o", "model.num_basis=3", "-o", "epochs=1", "--overwrite"]) == 0  # plots off
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 1  # a fresh one-epoch run
    # no plots of the old run beside the new model, and none promised
    assert not any((out / name).exists() for name in ("learning_curves.png", "parity_valid.png", "parity_test.png"))
    assert f"model, metrics.csv in {out}" in capsys.readouterr().out


def test_eval_by_config_type_splits_the_same_errors(tiny_setup, capsys):
    tmp_path, path, data = tiny_setup
    assert main(["train", str(path), "-o", "epochs=1"]) == 0
    frames = ase.io.read(data, ":")
    for k, atoms in enumerate(frames):
        if k % 3:  # two labelled groups and one frame group without the key
            atoms.info["config_type"] = "bulk" if k % 3 == 1 else "surface"
    tagged = tmp_path / "tagged.xyz"
    ase.io.write(tagged, frames)
    report = tmp_path / "eval.json"
    model = str(tmp_path / "out" / "model.mlpot")
    capsys.readouterr()
    assert main(["eval", model, str(tagged), "--by", "config_type", "--json", str(report)]) == 0
    assert "MAE by config_type" in capsys.readouterr().out
    # the default plot goes beside the JSON, not into the model's folder (models/ is tracked)
    assert (tmp_path / "eval.parity.png").exists() and not list((tmp_path / "out").glob("*.parity.png"))
    ase.io.write(tmp_path / "one.xyz", frames[:1])  # one frame: R² is undefined
    assert main(["eval", model, str(tmp_path / "one.xyz"), "--json", str(tmp_path / "one.json")]) == 0
    strict = json.loads((tmp_path / "one.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert strict["n_frames"] == 1 and strict["energy_r2"] is None
    metrics = json.loads(report.read_text())
    groups = metrics["by_config_type"]
    assert sorted(groups) == ["(no config_type)", "bulk", "surface"]
    assert [groups[g]["n_frames"] for g in sorted(groups)] == [4, 4, 4]
    # the groups partition the frames: frame-weighted group errors give back the whole set's
    for key in ("energy_mae", "energy_mae_per_atom"):
        assert sum(g[key] * g["n_frames"] for g in groups.values()) / 12 == pytest.approx(metrics[key], rel=1e-6)
    assert sum(g["forces_mae"] for g in groups.values()) / 3 == pytest.approx(metrics["forces_mae"], rel=1e-6)
    assert main(["eval", model, str(data), "--by", "no_such_key"]) == 2
    assert "has 'no_such_key' in its info" in capsys.readouterr().err


def test_cv_and_learning_curve(tiny_setup, capsys):
    tmp_path, path, _ = tiny_setup
    # frames with equal labels: every fold fits the same reference energies and scale, so folds share
    # compiled programs (this test is about the plumbing: folds, outputs, plot)
    frames = molecules(12, names=("CH4",))
    for atoms in frames:
        atoms.calc.results.update(energy=-15.0, forces=frames[0].calc.results["forces"])
    ase.io.write(tmp_path / "frames.xyz", frames)
    assert main(["cv", str(path), "-k", "2", "-o", "epochs=1"]) == 0
    cv = json.loads((tmp_path / "out" / "cv.json").read_text())
    assert cv["k"] == 2 and len(cv["folds"]) == 2
    assert sum(fold["n_frames"] for fold in cv["folds"]) == 12  # every frame tested exactly once
    assert main(["learning-curve", str(path), "--sizes", "3", "6", "-o", "epochs=1", "-o", "plots=true"]) == 0
    curve = json.loads((tmp_path / "out" / "learning_curve.json").read_text())
    assert curve["sizes"] == [3, 6] and (tmp_path / "out" / "learning_curve.png").is_file()
    assert [run["train_frames"] for run in curve["runs"]] == [3, 6]
    assert all(run["n_frames"] == curve["test_frames"] > 0 and run["forces_mae"] > 0 for run in curve["runs"])
    assert curve["test_frames"] + curve["valid_frames"] + 6 <= 12  # held-out frames never train
    assert "frames: energy MAE" in capsys.readouterr().out
    # the same study again: finished runs are reused; a killed one (no results.json) resumes
    (tmp_path / "out" / "fold_1" / "results.json").unlink()
    assert main(["cv", str(path), "-k", "2", "-o", "epochs=1"]) == 0
    assert f"{tmp_path / 'out' / 'fold_0'}: finished with this config and these frames, reused" in (
        capsys.readouterr().out
    )
    again = json.loads((tmp_path / "out" / "cv.json").read_text())
    assert [fold["forces_mae"] for fold in again["folds"]] == pytest.approx(
        [fold["forces_mae"] for fold in cv["folds"]]
    )
    metrics = (tmp_path / "out" / "fold_1" / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 1 + 1  # resumed, not retrained: still its one epoch
    # another config over the same folders: refused, unless --overwrite
    assert main(["cv", str(path), "-k", "2", "-o", "epochs=2"]) == 2
    assert "holds a run of another config" in capsys.readouterr().err
    assert main(["cv", str(path), "-k", "2", "-o", "epochs=2", "--overwrite"]) == 0
    assert len((tmp_path / "out" / "fold_0" / "metrics.csv").read_text().splitlines()) == 1 + 2
    # the same config with another k: fold_0 and fold_1 hold other frames now, so they are not reused
    assert main(["cv", str(path), "-k", "3", "-o", "epochs=2"]) == 2
    assert "holds a run of other frames (another k, fold, data file or split)" in capsys.readouterr().err
    # an --overwrite study killed in a fold's first epoch leaves that fold's config.yaml: the old run's
    # results and checkpoint beside it were removed first, so the rerun trains the fold, not reads them
    fold = tmp_path / "out" / "fold_0"
    old_results = (fold / "results.json").read_text()
    from mlpot.training import selection

    real_fit, calls = selection.fit, []

    def killed_fit(config, prepared, resume=False):
        calls.append(config.output_dir)
        (Path(config.output_dir) / "config.yaml").write_text(selection.config_mod.dump(config))
        raise KeyboardInterrupt

    selection.fit = killed_fit
    try:
        with pytest.raises(KeyboardInterrupt):
            selection.cross_validate(str(path), 3, overwrite=True)
    finally:
        selection.fit = real_fit
    assert calls == [str(fold)] and not (fold / "results.json").exists()
    assert not (fold / "checkpoints" / "last.ckpt").exists()
    assert main(["cv", str(path), "-k", "3", "-o", "epochs=2", "--overwrite"]) == 0  # the killed command again
    cv = json.loads((tmp_path / "out" / "cv.json").read_text())
    assert cv["k"] == 3 and sum(run["n_frames"] for run in cv["folds"]) == 12
    assert (fold / "results.json").read_text() != old_results


@pytest.fixture()
def model_file(tmp_path, _tiny_model):
    """An untrained tiny model for H and C: eval's checks are about labels and paths, not accuracy."""
    from mlpot import ModelConfig, Potential

    path = tmp_path / "tiny.mlpot"
    Potential.create(ModelConfig(TINY, 3.0, (1, 6), {"num_basis": 3}), 0).save(path)
    return str(path)


def _write(path, frames):
    ase.io.write(path, frames)
    return str(path)


def _renamed(frames, energy="REF_energy", forces="REF_forces"):
    """The same frames with their labels under other names (as many data sets store DFT references)."""
    out = []
    for atoms in frames:
        copy = atoms.copy()
        copy.info[energy] = atoms.calc.results["energy"]
        copy.arrays[forces] = atoms.calc.results["forces"]
        out.append(copy)
    return out


def test_eval_refuses_labels_that_match_nothing(model_file, tmp_path, capsys):
    frames = molecules(5, names=("CH4",))
    labelled = _write(tmp_path / "eth.xyz", frames)
    # an explicitly given key that no frame has: an error naming file and key, not fewer quantities
    assert main(["eval", model_file, labelled, "--forces-key", "REF_forces", "--plot", str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err
    assert "REF_forces" in err and "eth.xyz" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a.png").exists()
    # no labels at all: nothing to evaluate (it printed "frames 5" and drew an empty plot)
    bare = _write(tmp_path / "bare.xyz", [atoms.copy() for atoms in frames])
    assert main(["eval", model_file, bare, "--plot", str(tmp_path / "b.png")]) == 2
    err = capsys.readouterr().err
    assert "nothing to evaluate" in err and "--energy-key" in err and not (tmp_path / "b.png").exists()
    # labels under other names, default keys: the error names them
    renamed = _write(tmp_path / "ref.xyz", _renamed(frames))
    assert main(["eval", model_file, renamed]) == 2
    err = capsys.readouterr().err
    assert "--energy-key REF_energy" in err and "--forces-key REF_forces" in err


def test_eval_says_which_labels_cover_which_frames(model_file, tmp_path, capsys):
    frames = molecules(6, names=("CH4",))
    # energy under another name, forces under the default: it reported forces only, without a word
    path = _write(tmp_path / "mixed.xyz", _renamed(frames, forces="forces"))
    report = tmp_path / "mixed.json"
    assert main(["eval", model_file, path, "--json", str(report)]) == 0
    err = capsys.readouterr().err
    assert "energy: 0 of 6 frames labelled" in err and "--energy-key REF_energy" in err
    assert json.loads(report.read_text())["n_frames_energy"] == 0
    assert main(["eval", model_file, path, "--energy-key", "REF_energy", "--json", str(report)]) == 0
    metrics = json.loads(report.read_text())
    assert metrics["n_frames_energy"] == metrics["n_frames_forces"] == 6 and "energy_mae" in metrics
    # one frame without energy: the energy error is over 5 frames, and that is said
    frames[2].calc.results.pop("energy")
    partial = _write(tmp_path / "partial.xyz", frames)
    capsys.readouterr()
    assert main(["eval", model_file, partial, "--json", str(report)]) == 0
    assert "energy: 5 of 6 frames labelled" in capsys.readouterr().err
    metrics = json.loads(report.read_text())
    assert metrics["n_frames"] == 6 and metrics["n_frames_energy"] == 5 and metrics["n_frames_forces"] == 6
    assert metrics["n_frames_stress"] == 0


def test_eval_batch_size_must_be_positive(model_file, tmp_path, capsys):
    data = _write(tmp_path / "frames.xyz", molecules(2, names=("CH4",)))
    with pytest.raises(SystemExit) as exit_info:  # argparse: usage and one error line, code 2
        main(["eval", model_file, data, "--batch-size", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--batch-size: must be a positive integer, got 0" in err and "range()" not in err


def test_eval_output_paths(model_file, tmp_path, capsys):
    data = _write(tmp_path / "frames.xyz", molecules(3, names=("CH4",)))
    # a plot in a folder that does not exist yet: made, as for --json
    assert main(["eval", model_file, data, "--plot", str(tmp_path / "new" / "p.png")]) == 0
    assert (tmp_path / "new" / "p.png").is_file()
    capsys.readouterr()
    # a folder as --json or --plot: refused before evaluating (it was an IsADirectoryError traceback)
    for option in ("--json", "--plot"):
        assert main(["eval", model_file, data, option, str(tmp_path / "new")]) == 2
        captured = capsys.readouterr()
        assert f"{option} {tmp_path / 'new'} is a folder" in captured.err and "frames" not in captured.out
    # an output over an input: the data (or model) would be replaced by the report
    before = Path(data).read_bytes()
    for option, target in (("--json", data), ("--plot", model_file)):
        assert main(["eval", model_file, data, option, target]) == 2
        assert f"{option} {target} is the input file {target}: it would be replaced" in capsys.readouterr().err
    assert Path(data).read_bytes() == before
    # a plot format matplotlib lacks, or the plot over the JSON: refused before evaluating, no JSON written
    for report, plot, message in (
        (tmp_path / "r.json", tmp_path / "p.parity", "matplotlib cannot write .parity; use one of"),
        (tmp_path / "both.png", tmp_path / "both.png", "the plot would overwrite the numbers"),
    ):
        assert main(["eval", model_file, data, "--json", str(report), "--plot", str(plot)]) == 2
        captured = capsys.readouterr()
        assert message in captured.err and "frames" not in captured.out and not report.exists()
    # without --plot the plot goes beside the JSON: that path is checked before the work too
    (tmp_path / "taken.parity.png").mkdir()
    assert main(["eval", model_file, data, "--json", str(tmp_path / "taken.json")]) == 2
    captured = capsys.readouterr()
    assert f"--plot {tmp_path / 'taken.parity.png'} is a folder" in captured.err and "frames" not in captured.out
    assert not (tmp_path / "taken.json").exists()
    assert main(["eval", model_file, data, "--plot", str(tmp_path / "p.svg")]) == 0
    assert (tmp_path / "p.svg").read_text().lstrip().startswith("<?xml")  # the format the suffix asks for
    assert not list(tmp_path.glob(".*.tmp"))  # written whole, through a temporary file


def test_eval_warns_about_frames_given_twice(model_file, tmp_path, capsys):
    data = _write(tmp_path / "frames.xyz", molecules(3, names=("CH4",)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # distinct frames: no warning
        assert main(["eval", model_file, data, "--plot", str(tmp_path / "once.png")]) == 0
    with pytest.warns(
        UserWarning, match=rf"3 of 6 frames repeat an earlier one .*first: {data}, frame 0 = {data}, frame 0"
    ):
        assert main(["eval", model_file, data, data, "--plot", str(tmp_path / "twice.png")]) == 0


def test_learning_curve_refuses_unusable_sizes(tiny_setup, capsys):
    _tmp_path, path, _ = tiny_setup
    # 12 frames: 1 test, 2 validation, 9 left for training; 500 was dropped without a word
    assert main(["learning-curve", str(path), "--sizes", "3", "500"]) == 2
    err = capsys.readouterr().err
    assert "size(s) 500 exceed the 9 frames left for training" in err
    # without --sizes the default ladder (25, 50, ...) stops at the data: here not even its first rung fits
    assert main(["learning-curve", str(path)]) == 2
    assert "only 9 frames are left for training" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["learning-curve", str(path), "--sizes", "0", "3"])
    assert exit_info.value.code == 2 and "must be a positive integer, got 0" in capsys.readouterr().err
    from mlpot.training.config import load
    from mlpot.training.selection import learning_curve

    with pytest.raises(ValueError, match="at least 1"):
        learning_curve(load(path), [0, 3])


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["train", "config.yaml"], "rerun with --resume"),
        (["md", "m.mlpot", "s.xyz", "--steps", "9", "--restart", "r.npz"], "rerun the same command"),
        (["md", "m.mlpot", "s.xyz", "--steps", "9"], "without --restart FILE a rerun starts over (--overwrite)"),
    ],
)
def test_ctrl_c_is_one_line_and_exit_code_130(monkeypatch, capsys, argv, hint):
    from md import cli as md_cli
    from mlpot import train_cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli, "_cmd_train", interrupted)
    monkeypatch.setattr(md_cli, "main", interrupted)
    try:
        code = main(argv)
    except KeyboardInterrupt:  # escaping, it would stop the whole pytest session
        pytest.fail("KeyboardInterrupt escaped main() (a traceback for the user)")
    assert code == 130
    err = capsys.readouterr().err
    assert err.startswith(f"mlpot {argv[0]}: interrupted") and hint in err and len(err.splitlines()) == 1


def test_a_user_warning_prints_as_one_line_naming_the_command_and_main_restores_the_format(tmp_path):
    from mlpot.cli import _one_line

    before = warnings.formatwarning
    fmt = _one_line("eval", before)
    assert fmt("frames.xyz, frame 3: no stress label", UserWarning, "/x/mlpot/reading.py", 12) == (
        "mlpot eval: warning: frames.xyz, frame 3: no stress label\n"
    )
    assert "DeprecationWarning" in fmt("old", DeprecationWarning, "/x/y.py", 1)
    assert main(["eval", str(tmp_path / "none.mlpot"), str(tmp_path / "none.xyz")]) == 2  # after the swap
    assert warnings.formatwarning is before
