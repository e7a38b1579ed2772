"""The ensembles by name: each one's step function, and ``integrator``, the jax-md style pair.

``md.simulation`` and ``mlpot md`` pick an ensemble by these names; the steps themselves live in
``md.integrators`` (NVE, Langevin, Nosé-Hoover chain) and ``md.barostats`` (the NPT ones).
"""

from __future__ import annotations

from functools import partial

from md.barostats import berendsen_npt_step, mtk_cell_npt_step, mtk_npt_step
from md.integrators import ForceFn, Integrator, init, langevin_step, nose_hoover_step, nve_step, refresh

STEPS = {
    "nve": nve_step,
    "langevin": langevin_step,
    "nose-hoover": nose_hoover_step,
    "npt": berendsen_npt_step,
    "npt-mtk": mtk_npt_step,
    "npt-mtk-cell": mtk_cell_npt_step,
}
BAROSTATS = ("npt", "npt-mtk", "npt-mtk-cell")  # they change the cell, from the stress
CHAINED = ("nose-hoover", "npt-mtk", "npt-mtk-cell")  # Nosé-Hoover chains: masses kT tdamp^2 need kT > 0
MTK = {"npt-mtk": True, "npt-mtk-cell": False}  # ensemble: isotropic (``barostat_energy``'s switch)
# The settings (``Params`` fields) each ensemble's step reads: only these are checked
# (``md.simulation.check_settings``), compared on a restart, or worth an option at the command line.
USES = {
    "nve": ("dt",),
    "langevin": ("dt", "kT", "friction"),
    "nose-hoover": ("dt", "kT", "tdamp"),
    "npt": ("dt", "kT", "tdamp", "pressure", "taup", "compressibility"),  # tdamp: Berendsen's taut
    "npt-mtk": ("dt", "kT", "tdamp", "pressure", "taup"),  # taup: MTK's pdamp
    "npt-mtk-cell": ("dt", "kT", "tdamp", "pressure", "taup"),
}


def integrator(ensemble: str, force_fn: ForceFn) -> Integrator:
    """jax-md style pair: ``init_fn(positions, momenta, masses, cell, key, force_args)``,
    ``step_fn(state, params, force_args)``. ``force_fn`` is code, so closing over it is fine."""
    if ensemble not in STEPS:
        raise ValueError(f"unknown ensemble {ensemble!r}; choose from {sorted(STEPS)}")
    return Integrator(partial(init, force_fn), partial(STEPS[ensemble], force_fn), partial(refresh, force_fn))
