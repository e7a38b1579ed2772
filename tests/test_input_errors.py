"""Bad input to ``mlpot train | eval | md``: one line naming the file, frame and field (or the option or
config key), exit code 2, no traceback, and before any work (evaluation, training or MD)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import ase.io
import pytest
import yaml
from ase import Atoms

from md.toy import argon_crystal, argon_potential
from mlpot.cli import main
from mlpot.data import read_frames

ROOT = Path(__file__).resolve().parents[1]
MODEL = str(ROOT / "models" / "ethanol-cpu.mlpot")
# Nothing can be created under /proc, not even by root (for whom os.access says yes nearly everywhere).
UNWRITABLE = "/proc/definitely/absent"


def _ethanol(path: Path, frames: int = 3, bad_energy: str | None = None) -> str:
    """The first ``frames`` frames of the ethanol set (9 atoms: 11 lines each); ``bad_energy`` replaces
    frame 1's energy label."""
    lines = (ROOT / "datasets" / "ethanol" / "train.xyz").read_text().splitlines(keepends=True)[: 11 * frames]
    if bad_energy is not None:
        lines[12] = re.sub(r"energy=\S+", f"energy={bad_energy}", lines[12])
    path.write_text("".join(lines))
    return str(path)


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture()
def config(tmp_path) -> Path:
    """A training config whose data, if it were read, would fail with a data error of its own."""
    path = tmp_path / "config.yaml"
    values = {
        "train_file": _ethanol(tmp_path / "bad.xyz", bad_energy="abc"),
        "model": {"name": "painn", "features": 8, "num_interactions": 1},
        "epochs": 1,
        "progress": False,
        "plots": False,
        "output_dir": str(tmp_path / "out"),
    }
    path.write_text(yaml.safe_dump(values))
    return path


def test_eval_names_file_frame_and_field_of_a_non_numeric_energy(tmp_path, capsys):
    data = _ethanol(tmp_path / "frames.xyz", bad_energy="abc")
    assert main(["eval", MODEL, data]) == 2
    assert f"{data}, frame 1: field 'energy' is not a number: 'abc'" in _error(capsys)


def test_train_names_file_frame_and_field_of_a_non_numeric_energy(config, capsys):
    assert main(["train", str(config)]) == 2
    assert "bad.xyz, frame 1: field 'energy' is not a number: 'abc'" in _error(capsys)
    assert not (config.parent / "out" / "model.mlpot").exists()


def test_skip_bad_frames_skips_a_non_numeric_energy(tmp_path):
    data = _ethanol(tmp_path / "frames.xyz", bad_energy="abc")
    with pytest.warns(UserWarning, match="skipped 1 bad frame.*frame 1: field 'energy' is not a number"):
        frames = read_frames(data, skip_bad_frames=True)
    assert [f.where for f in frames] == [f"{data}, frame 0", f"{data}, frame 2"]


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_eval_refuses_an_unwritable_output_before_evaluating(tmp_path, capsys, option):
    data = _ethanol(tmp_path / "frames.xyz")
    target = f"{UNWRITABLE}/x.out"
    assert main(["eval", MODEL, data, option, target]) == 2
    assert f"{option} {target}: cannot write in /proc" in _error(capsys)
    assert capsys.readouterr().out == ""  # no metrics table: nothing was evaluated


def test_eval_says_a_model_folder_is_a_directory(tmp_path, capsys):
    (tmp_path / "adir").mkdir()
    assert main(["eval", str(tmp_path / "adir"), _ethanol(tmp_path / "frames.xyz")]) == 2
    assert f"{tmp_path / 'adir'} is a directory, not a model file" in _error(capsys)


@pytest.fixture(scope="module")
def argon(tmp_path_factory):
    folder = tmp_path_factory.mktemp("argon")
    argon_potential(6.5).save(folder / "argon.mlpot")
    crystal = argon_crystal(2, temperature_K=0.0)
    ase.io.write(folder / "one.xyz", crystal)
    ase.io.write(folder / "three.xyz", [crystal] * 3)
    ase.io.write(folder / "empty_frame.xyz", Atoms())
    return folder


@pytest.mark.parametrize("option", ["--traj", "--log", "--restart"])
def test_md_refuses_an_unwritable_output(argon, capsys, option):
    target = f"{UNWRITABLE}/out"
    assert main(["md", str(argon / "argon.mlpot"), str(argon / "one.xyz"), "--steps", "0", option, target]) == 2
    assert f"{option} {target}: cannot write in /proc" in _error(capsys)


def test_an_os_error_is_one_line(argon, capsys, monkeypatch):
    # what no check foresees (a disk full mid-run, say) still ends as one line, not a traceback
    def full(args):
        raise OSError(28, "No space left on device", "t.xyz")

    monkeypatch.setattr("md.cli.build", full)
    assert main(["md", str(argon / "argon.mlpot"), str(argon / "one.xyz"), "--steps", "1"]) == 2
    assert "mlpot md: error: [Errno 28] No space left on device: 't.xyz'" in _error(capsys)


def test_md_says_which_frame_of_several_it_starts_from(argon, capsys):
    args = ["md", str(argon / "argon.mlpot"), str(argon / "three.xyz"), "--steps", "0", "--temperature", "0"]
    assert main(args) == 0
    note = f"note: {argon / 'three.xyz'} has more than one frame; starting from frame 0 (choose with --index)"
    assert note in capsys.readouterr().err
    assert main([*args, "--index", "0"]) == 0  # asked for: nothing to say
    assert "note:" not in capsys.readouterr().err
    assert main([*args[:2], str(argon / "one.xyz"), *args[3:]]) == 0
    assert "note:" not in capsys.readouterr().err


def test_md_names_the_structure_file_holding_an_element_the_model_lacks(argon, tmp_path, capsys):
    path = tmp_path / "si.xyz"
    ase.io.write(path, Atoms("ArSi", positions=[[0, 0, 0], [2.5, 0, 0]], cell=[8.0] * 3, pbc=True))
    assert main(["md", str(argon / "argon.mlpot"), str(path), "--steps", "5"]) == 2
    assert f"{path}, frame 0: element(s) ['Si'] not in the model's species ['Ar']" in _error(capsys)


def test_md_refuses_a_frame_without_atoms_before_drawing_velocities(argon, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ASE's divide-by-zero warning of 0 atoms would fail here
        assert main(["md", str(argon / "argon.mlpot"), str(argon / "empty_frame.xyz"), "--steps", "5"]) == 2
    assert f"{argon / 'empty_frame.xyz'}, frame 0: has no atoms" in _error(capsys)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("epochs=", "epochs must be an int, got null"),
        ("energy_weight=null", "energy_weight must be a float, got null"),
        ("skip_bad_frames=", "skip_bad_frames must be a bool, got null"),
        ("energy_key=", "energy_key must be text, got null"),
        ("model.features=", "model.features must be an int, got null"),
        ("weight_schedule=5", "weight_schedule must be a list of mappings"),
        ("weight_schedule=", "weight_schedule must be a list of mappings"),
        ("model.name=[x]", "model.name must be one of"),
        ("train_file=[a.xyz", "override 'train_file=[a.xyz': not a valid YAML value"),
        ("output_dir=", "output_dir must be text, got null"),
        # .nan and .inf pass every range test (nan compares false): they must be refused as such
        ("energy_weight=.nan", "energy_weight must be a finite number, got nan"),
        ("learning_rate=.inf", "learning_rate must be a finite number, got inf"),
        ("max_time=.inf", "max_time must be a finite number, got inf"),
        ("warmup_epochs=.nan", "warmup_epochs must be a finite number, got nan"),
        ("cutoff=.inf", "cutoff must be a finite number, got inf"),
        ("weight_schedule=[{epoch: 1, energy_weight: .nan}]", "weight_schedule[0].energy_weight must be a number >= 0"),
        ("seed=-1", "seed must be >= 0"),
        ("weight_decay=0.01", "weight_decay 0.01 is applied by optimizer adamw only"),  # adam would ignore it
    ],
)
def test_train_refuses_a_bad_override(config, capsys, override, message):
    assert main(["train", str(config), "-o", override]) == 2
    assert message in _error(capsys)


def test_train_refuses_a_test_fraction_that_a_test_file_would_leave_unused(config, capsys):
    assert main(["train", str(config), "-o", "test_file=other.xyz", "-o", "test_fraction=0.5"]) == 2
    assert "test_fraction 0.5 draws test frames from train_file only when there is no test_file" in _error(capsys)


def test_train_refuses_a_loss_with_every_weight_zero(config, capsys):
    zero = [arg for key in ("energy", "forces", "stress") for arg in ("-o", f"{key}_weight=0")]
    assert main(["train", str(config), *zero]) == 2
    assert "energy_weight, forces_weight and stress_weight are all 0" in _error(capsys)


def test_train_refuses_a_null_value_in_the_config_file(config, capsys):
    config.write_text(config.read_text().replace("epochs: 1", "epochs:"))
    assert main(["train", str(config)]) == 2
    assert f"{config}: epochs must be an int, got null" in _error(capsys)


def test_a_model_override_on_an_empty_or_scalar_model_entry(config, capsys):
    from mlpot.training.config import apply_overrides, from_dict

    values = apply_overrides({"train_file": "a.xyz", "model": None}, ["model.features=8"])  # "model:" left empty
    assert from_dict(values).model["features"] == 8
    config.write_text(
        yaml.safe_dump({**yaml.safe_load(config.read_text()), "model": 3})
    )  # a TypeError traceback before
    assert main(["train", str(config), "-o", "model.features=8"]) == 2
    assert f"{config}: model must be a mapping" in _error(capsys)


def test_train_refuses_a_key_given_twice_in_the_config_file(config, capsys):
    # settings put above `mlpot template`'s output: YAML itself would keep the template's line below
    lines = config.read_text().splitlines()
    config.write_text("\n".join(["epochs: 50", *lines]) + "\n")
    assert main(["train", str(config)]) == 2
    twice = f"lines 1 and {2 + next(i for i, line in enumerate(lines) if line.startswith('epochs:'))}"
    assert f"{config}: key 'epochs' is given twice ({twice})" in _error(capsys)
    values = {k: v for k, v in yaml.safe_load(config.read_text()).items() if k != "model"}
    config.write_text(yaml.safe_dump(values) + "model: {name: painn, features: 8, features: 64}\n")
    assert main(["train", str(config)]) == 2
    assert "key 'features' is given twice" in _error(capsys)
    # YAML's merge key is no repetition; an unhashable key stays YAML's own error, not a traceback
    config.write_text(yaml.safe_dump(values) + "model:\n  <<: {name: painn, features: 8}\n  features: 16\n")
    from mlpot.training.config import load

    assert load(config).model == {"name": "painn", "features": 16}
    config.write_text(yaml.safe_dump(values) + "[1, 2]: 3\n")
    assert main(["train", str(config)]) == 2
    assert "not valid YAML" in _error(capsys)


def test_a_path_given_with_o_is_looked_for_where_it_was_typed(tmp_path, monkeypatch):
    """A path in the file is looked for beside the file first; one typed on the command line in the
    working directory first: a same-named file beside the config must not be picked instead."""
    from mlpot.training.config import load

    (tmp_path / "configs").mkdir()
    (tmp_path / "work").mkdir()
    for folder in ("configs", "work"):
        (tmp_path / folder / "train.xyz").write_text("")
    (tmp_path / "configs" / "my.yaml").write_text("train_file: train.xyz\ninit_from: train.xyz\n")
    monkeypatch.chdir(tmp_path / "work")
    config = load("../configs/my.yaml", ["init_from=train.xyz"])
    assert Path(config.train_file).resolve() == tmp_path / "configs" / "train.xyz"
    assert Path(config.init_from).resolve() == tmp_path / "work" / "train.xyz"
    (tmp_path / "work" / "train.xyz").unlink()  # typed but only beside the config: found there
    assert Path(load("../configs/my.yaml", ["init_from=train.xyz"]).init_from).resolve() == (
        tmp_path / "configs" / "train.xyz"
    )


def test_train_refuses_a_number_as_a_config_key(config, capsys):
    config.write_text(config.read_text() + "1: 2\n")
    assert main(["train", str(config)]) == 2
    assert f"{config}: unknown key '1'" in _error(capsys)


@pytest.mark.parametrize("where", ["file", "unwritable"])
def test_train_refuses_an_unusable_output_dir_before_reading_data(config, capsys, where):
    # the data of ``config`` is bad: an error about it would mean the data was read first
    output_dir = {"file": f"{config}/sub", "unwritable": f"{UNWRITABLE}/out"}[where]
    assert main(["train", str(config), "-o", f"output_dir={output_dir}"]) == 2
    problem = {"file": f"{config} is a file, not a folder", "unwritable": "cannot write in /proc"}[where]
    assert f"output_dir {output_dir}: {problem}" in _error(capsys)
