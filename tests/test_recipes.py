"""The benchmark recipes in examples/benchmarks/ are valid configs that train_all.sh can run.

train_all.sh trains ``<name>.yaml`` and ships ``runs/benchmarks/<name>/model.mlpot`` as
``models/<name>.mlpot``, so each recipe's output_dir must be named after its file, and its
data must be the seeded splits that make_splits.py writes.
"""

from pathlib import Path

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
