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
from mlpot.models.committee import members

MODELS = sorted((Path(__file__).resolve().parents[1] / "models").glob("*.mlpot"))


def test_the_benchmark_models_are_shipped():
    names = {path.stem for path in MODELS}
    assert {"ethanol", "3bpa", "water", "mlearn-Si", "mlearn-Ge", "mlearn-Li", "mlearn-Mo"} <= names, names


def test_the_names_issue_5_gives_hold_the_accurate_models():
    """models/<name>.mlpot is what a user (or a check) loads by the benchmark's name: the MACE where
    one is shipped (or a committee of MACEs), not the fast PaiNN beside it (<name>-painn.mlpot). Water
    ships a PaiNN only."""
    by_name = {path.stem: path for path in MODELS}
    for name in ("ethanol", "3bpa", "mlearn-Si", "mlearn-Ge", "mlearn-Li", "mlearn-Mo"):
        assert {m.config.name for m in members(mlpot.load(by_name[name]))} == {"mace"}, name
    for name, path in by_name.items():
        if name.endswith("-painn"):
            assert mlpot.load(path).config.name == "painn", name


@pytest.mark.parametrize("path", MODELS, ids=[path.stem for path in MODELS])
def test_shipped_model_loads_with_finite_parameters(path):
    potential = mlpot.load(path)
    for member in members(potential):  # a committee's checks are its members'
        config = member.config
        assert config.cutoff > 0 and len(config.species) >= 1
        assert len(config.reference_energies) == len(config.species) == len(config.energy_scale)
        assert np.all(np.isfinite(config.reference_energies)) and np.all(np.asarray(config.energy_scale) > 0)
        # the ZBL core (BENCHMARKS, "Short-range core"): one radius per species pair, inside the bond range
        radii = np.asarray(config.repulsion_radii)
        assert radii.shape == (len(config.species), len(config.species)), path.name
        assert np.all((radii > 0.3) & (radii < 3.0)) and np.allclose(radii, radii.T)
        leaves = jax.tree_util.tree_leaves(member.params)
        assert leaves and all(np.all(np.isfinite(np.asarray(leaf))) for leaf in leaves)
