"""mlpot's molecular-dynamics engine.

* ``md.integrators``: pure steps (NVE, Langevin BAOAB, Nosé-Hoover chain) over an immutable ``MDState``;
  ``md.barostats`` the ones that move the cell (Berendsen NPT, MTK NPT of the volume or the whole cell);
  ``md.ensembles`` names them and builds the jax-md style ``init_fn``/``step_fn`` pair (``integrator``);
* ``md.loop``: the compiled chunk (``lax.while_loop``) that stops early for a
  neighbour rebuild or a safety violation;
* ``md.simulation``: the host loop (rebuilds, observers, errors);
* ``md.velocities``: how a run starts (Maxwell-Boltzmann momenta, held atoms, moving degrees of freedom);
* ``md.drivers``: ASE-style ``VelocityVerlet``, ``Langevin``,
  ``NoseHooverChainNVT``, ``NPTBerendsen``, ``IsotropicMTKNPT``, ``MTKNPT``,
  each a ``md.dynamics.Dynamics`` (the atoms-in-place run behind them);
* ``md.cli``: ``mlpot md``.
"""

from md.drivers import (
    MTKNPT,
    Dynamics,
    IsotropicMTKNPT,
    Langevin,
    NoseHooverChainNVT,
    NPTBerendsen,
    VelocityVerlet,
)
from md.simulation import MDError, Simulation

__all__ = [
    "MTKNPT",
    "Dynamics",
    "IsotropicMTKNPT",
    "Langevin",
    "MDError",
    "NPTBerendsen",
    "NoseHooverChainNVT",
    "Simulation",
    "VelocityVerlet",
]
