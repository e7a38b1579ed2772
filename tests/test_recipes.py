"""The benchmark recipes in examples/benchmarks/ are valid configs that train_all.sh can run.

train_all.sh trains ``<name>.yaml`` and ships ``runs/benchmarks/<name>/model.mlpot`` as
``models/<name>.mlpot``, so each recipe's output_dir must be named after its file, and its
data must be the seeded splits that make_splits.py writes.
"""

from pathlib import Path

import pytest
import yaml

from mlpot.training import config as config_mod

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "examples" / "benchmarks").glob("*.yaml"))


def test_every_shipped_benchmark_model_has_a_recipe():
    models = {path.stem for path in (ROOT / "models").glob("*.mlpot")}
    assert models <= {path.stem for path in RECIPES}


@pytest.mark.parametrize("path", RECIPES, ids=[path.stem for path in RECIPES])
def test_recipe_is_valid_and_writes_where_train_all_looks(path):
    config = config_mod.validate(config_mod.load(path))
    assert Path(config.output_dir) == Path("runs/benchmarks") / path.stem
    raw = yaml.safe_load(path.read_text())  # as written: load() resolves paths that do not exist yet
    for key in ("train_file", "valid_file", "test_file"):
        assert Path(raw[key]).parent == Path("runs/benchmarks/splits"), (key, raw[key])
    assert config.max_time and config.max_time > 0  # every recipe is budgeted by wall time
