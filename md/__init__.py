"""mlpot's molecular-dynamics engine.

* ``md.integrators``: pure ``init_fn``/``step_fn`` pairs (NVE, Langevin BAOAB,
  Nosé-Hoover chain, Berendsen NPT, MTK NPT of the volume or the whole cell) over an immutable ``MDState``;
* ``md.loop``: the compiled chunk (``lax.while_loop``) that stops early for a
  neighbour rebuild or a safety violation;
* ``md.simulation``: the host loop (rebuilds, observers, errors);
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
