"""The benchmark recipes in examples/benchmarks/ are valid configs that train_all.sh can run.

train_all.sh trains ``<name>.yaml`` and ships ``runs/benchmarks/<name>/model.mlpot`` as
``models/<name>.mlpot``, so each recipe's output_dir must be named after its file, and its
data must be the seeded splits that make_splits.py writes.
"""

from pathlib import Path

import numpy as np
import pytest
import yaml

import mlpot
from mlpot.models.committee import members
from mlpot.training import config as config_mod

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "examples" / "benchmarks").glob("*.yaml"))


def test_every_shipped_benchmark_model_has_a_recipe():
    # <name>-single.mlpot is one member of the committee <name>.mlpot: both come from <name>.yaml
    models = {path.stem.removesuffix("-single") for path in (ROOT / "models").glob("*.mlpot")}
    assert models <= {path.stem for path in RECIPES}
    for path in (ROOT / "models").glob("*-single.mlpot"):
        committee = mlpot.load(path.with_name(path.name.replace("-single", "")))
        assert committee.config.name == "committee" and mlpot.load(path).config in (
            member.config for member in members(committee)
        )


@pytest.mark.parametrize("path", RECIPES, ids=[path.stem for path in RECIPES])
def test_recipe_is_valid_and_writes_where_train_all_looks(path):
    config = config_mod.validate(config_mod.load(path))
    assert Path(config.output_dir) == Path("runs/benchmarks") / path.stem
    raw = yaml.safe_load(path.read_text())  # as written: load() resolves paths that do not exist yet
    for key in ("train_file", "valid_file", "test_file"):
        assert Path(raw[key]).parent == Path("runs/benchmarks/splits"), (key, raw[key])
    assert config.max_time and config.max_time > 0  # every recipe is budgeted by wall time


def test_a_separate_test_file_loses_the_frames_it_shares_with_the_training_source():
    # 3BPA's train_mixedT.xyz repeats frames of train_300K.xyz; they must not count as test frames.
    import importlib.util

    from ase.build import molecule

    spec = importlib.util.spec_from_file_location("make_splits", ROOT / "examples" / "benchmarks" / "make_splits.py")
    make_splits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_splits)
    source = [molecule("H2O") for _ in range(3)]
    for k, atoms in enumerate(source):
        atoms.positions += 0.1 * k
    moved = molecule("H2O")
    moved.positions[0, 0] += 0.01  # a different geometry, kept
    renamed = source[1].copy()
    renamed.numbers = [1, 8, 1]  # same positions, other elements: kept
    test = [source[1].copy(), moved, renamed, source[2].copy()]
    assert make_splits.unseen(test, source) == [moved, renamed]


def test_copies_of_a_frame_are_kept_in_one_split_and_other_frames_stay_where_drawn():
    # mlearn repeats strained cells rotated and re-indexed: a test copy of a training frame is a training error
    import importlib.util

    from ase.build import bulk, molecule

    spec = importlib.util.spec_from_file_location("make_splits", ROOT / "examples" / "benchmarks" / "make_splits.py")
    make_splits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_splits)
    water = molecule("H2O")
    swapped = water.copy()
    swapped.numbers = [1, 8, 1]  # the same points, another element on each: not a copy
    cell = bulk("Si", "diamond", 5.43, cubic=True)
    cell.set_cell(cell.cell.array @ np.diag([1.01, 1, 1]), scale_atoms=True)
    turned = cell.copy()  # strained along y instead of x: a copy
    turned.set_cell(cell.cell.array[[1, 0, 2]][:, [1, 0, 2]])
    turned.positions = cell.positions[:, [1, 0, 2]]
    frames = [water, cell, swapped, turned, water.copy(), molecule("NH3")]
    # drawn: the cell for test, its copy for training; water for validation, its copy for test
    parts = {"train": np.array([3, 5]), "valid": np.array([0]), "test": np.array([1, 2, 4])}
    kept, moved = make_splits._copies_together(frames, parts)
    assert sorted(kept["train"]) == [1, 3, 5] and list(kept["valid"]) == [0, 4] and list(kept["test"]) == [2]
    assert moved == {"valid": 0, "test": 2}
