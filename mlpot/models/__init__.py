"""The models that fit the model slot: ``module(vectors, graph) -> per-atom energies``."""

from mlpot.models.committee import NAME as COMMITTEE
from mlpot.models.committee import Committee
from mlpot.models.lennard_jones import LennardJones
from mlpot.models.mace import MACE
from mlpot.models.painn import PaiNN

MODELS = {"painn": PaiNN, "lennard_jones": LennardJones, "mace": MACE, COMMITTEE: Committee}


def trainable() -> list[str]:
    """The models ``mlpot train`` fits: all but the committee, which is assembled from trained models."""
    return sorted(name for name in MODELS if name != COMMITTEE)
