"""A screened-nuclear (ZBL) core below the closest pair distance seen in training.

A network only knows the distances its training data covered. In MD, a pair
pushed closer than any training pair meets whatever the network extrapolates
to, often an attractive hole: atoms collapse and the run stops. Other MLIPs
add the ZBL universal screened-Coulomb repulsion (Ziegler, Biersack and
Littmark, 1985) for this; here it is switched on only *inside* an inner radius
per species pair, set below the closest pair of that kind in the training
frames, so it is exactly zero on every training frame and does not change the
fit. Per pair (r in Å, energy in eV):

  E(r) = 14.399645 Z_i Z_j / r * phi(r / a) * s(r),  a = 0.46850 / (Z_i^0.23 + Z_j^0.23)
  phi(x) = 0.18175 e^{-3.19980 x} + 0.50986 e^{-0.94229 x} + 0.28022 e^{-0.40290 x} + 0.02817 e^{-0.20162 x}

and s goes from 1 at ``r_off - width`` to 0 at ``r_off`` with zero first and
second derivatives at both ends, so energy, forces and their derivatives are
continuous. Each directed edge gives half its pair energy to its receiver.
"""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
from ase.data import covalent_radii

from mlpot.graph import neighbour_search
from mlpot.radial import safe_norm, smooth_step_down

COULOMB = 14.399645  # e^2 / (4 pi eps0), eV Å
SCREENING_LENGTH = 0.46850  # 0.8854 Bohr radius, Å
PHI = ((0.18175, 3.19980), (0.50986, 0.94229), (0.28022, 0.40290), (0.02817, 0.20162))
WIDTH = 0.3  # Å over which the core switches off below the inner radius


def zbl(r, zi, zj):
    """ZBL pair energy (eV) at distance r (Å) of nuclear charges zi, zj (arrays broadcast)."""
    a = SCREENING_LENGTH / (zi**0.23 + zj**0.23)
    x = r / a
    phi = sum(c * jnp.exp(-k * x) for c, k in PHI)
    return COULOMB * zi * zj / r * phi


def atom_energies(vectors, graph, atomic_numbers, radii):
    """(N,) eV: half of each in-range edge's ZBL energy to its receiver.

    ``atomic_numbers`` (S,) and ``radii`` (S, S) Å are indexed by species index.
    Padding edges and edges at or beyond the inner radius give exactly 0 (and a 0 gradient).
    """
    zi = atomic_numbers[graph.species[graph.receivers]].astype(vectors.dtype)
    zj = atomic_numbers[graph.species[graph.senders]].astype(vectors.dtype)
    r_off = radii[graph.species[graph.receivers], graph.species[graph.senders]]
    r = safe_norm(vectors)
    inside = graph.edge_mask & (r < r_off) & (r > 0)
    # where 1/r, exp and the switch are finite (r_off may be 0: no core); the values there are dropped
    r_safe = jnp.where(inside, r, jnp.maximum(r_off, 1.0))
    switch = smooth_step_down(r_safe, jnp.maximum(r_off - WIDTH, 0.0), r_off)
    pair = jnp.where(inside, zbl(r_safe, zi, zj) * switch, 0.0)
    num_nodes = graph.species.shape[0]
    return 0.5 * jnp.zeros(num_nodes, vectors.dtype).at[graph.receivers].add(pair)


def radii_from_frames(
    frames, species, margin: float = 0.1, search: float = 3.0, names=None, cutoff: float | None = None
) -> tuple:
    """Inner radii (S x S, Å) from training frames: the closest pair of each species pair
    minus ``margin``; pairs never seen within ``search`` Å get 0.6 x (sum of covalent radii).
    Floors at 0.3 Å; capped at the model's ``cutoff``: the core acts only on listed edges, so one
    reaching past the cutoff would drop to zero in a step when its pair leaves the list.

    A pair closer than half its covalent radii sum is almost surely a broken frame (an atom written
    twice, a unit slip); it would pull that core in to the floor, so it is named in a warning
    (``names``: where each frame came from, e.g. "file, frame k")."""
    return radii_from_closest(closest_pairs(frames, species, search, names), species, margin, cutoff)


def closest_pairs(frames, species, search: float = 3.0, names=None) -> np.ndarray:
    """S x S (symmetric, Å): the closest distance of each pair of species in the frames, inf where no
    pair came within ``search``; warns about a pair under half its covalent radii sum."""
    index = {z: k for k, z in enumerate(species)}
    closest = np.full((len(species), len(species)), np.inf)
    for f, atoms in enumerate(frames):
        i, j, _, d = neighbour_search(atoms, search)
        if len(i) == 0:
            continue
        a = np.array([index[z] for z in atoms.numbers[i]])
        b = np.array([index[z] for z in atoms.numbers[j]])
        np.minimum.at(closest, (a, b), d)
        # the pair closest relative to its own radii: a normal O-H bond (0.97 Å) is closer than a broken
        # Si-Si pair at 1.0 Å, which is the one to name
        ratio = d / (0.5 * (covalent_radii[atoms.numbers[i]] + covalent_radii[atoms.numbers[j]]))
        k = int(np.argmin(ratio))
        if ratio[k] < 1:
            where = names[f] if names is not None else f"frame {f}"
            symbols = atoms.get_chemical_symbols()
            warnings.warn(
                f"{where}: atoms {i[k]} ({symbols[i[k]]}) and {j[k]} ({symbols[j[k]]}) are {d[k]:.3f} Å apart, "
                f"under half their covalent radii sum: check that frame (the repulsive core for this pair "
                "starts from the closest training pair)",
                stacklevel=3,
            )
    return np.minimum(closest, closest.T)


def radii_from_closest(closest, species, margin: float = 0.1, cutoff: float | None = None) -> tuple:
    """``radii_from_frames`` from the closest pairs (``closest_pairs``)."""
    radii = np.empty_like(closest)
    for p, zp in enumerate(species):
        for q, zq in enumerate(species):
            seen = closest[p, q]
            guess = 0.6 * (covalent_radii[zp] + covalent_radii[zq])
            radii[p, q] = max(seen - margin if np.isfinite(seen) else guess, 0.3)
    radii = np.floor(radii * 1e4) / 1e4  # 4 decimals for the file, never rounded up past the cutoff
    if cutoff is not None:
        radii = np.minimum(radii, cutoff)
    return tuple(tuple(float(x) for x in row) for row in radii)
