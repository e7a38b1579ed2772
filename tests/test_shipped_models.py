"""Every model shipped in models/ loads, is complete and has finite parameters.

Loading checks the file's checksum and format version; a model trained into
NaN, or saved without its species, cutoff or energy references, would pass
`mlpot eval` on nothing and fail a user later.
"""

from pathlib import Path

import jax
import numpy as np
import pytest

import mlpot

MODELS = sorted((Path(__file__).resolve().parents[1] / "models").glob("*.mlpot"))


def test_the_benchmark_models_are_shipped():
    names = {path.stem for path in MODELS}
    assert {"ethanol", "3bpa", "water", "mlearn-Si", "mlearn-Ge", "mlearn-Li", "mlearn-Mo"} <= names, names


@pytest.mark.parametrize("path", MODELS, ids=[path.stem for path in MODELS])
def test_shipped_model_loads_with_finite_parameters(path):
    potential = mlpot.load(path)
    config = potential.config
    assert config.cutoff > 0 and len(config.species) >= 1
    assert len(config.reference_energies) == len(config.species) == len(config.energy_scale)
    assert np.all(np.isfinite(config.reference_energies)) and np.all(np.asarray(config.energy_scale) > 0)
    leaves = jax.tree_util.tree_leaves(potential.params)
    assert leaves and all(np.all(np.isfinite(np.asarray(leaf))) for leaf in leaves)
