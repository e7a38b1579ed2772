"""The models that fit the model slot: ``module(vectors, graph) -> per-atom energies``."""

from mlpot.models.lennard_jones import LennardJones
from mlpot.models.mace import MACE
from mlpot.models.painn import PaiNN

MODELS = {"painn": PaiNN, "lennard_jones": LennardJones, "mace": MACE}
