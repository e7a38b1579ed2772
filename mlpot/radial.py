"""NaN-safe geometry and radial functions shared by the models.

All functions take distances in Å and are safe on padding edges (zero-length
vectors): their values *and* gradients are finite there.
"""

from __future__ import annotations

import jax.numpy as jnp


def safe_norm(vectors: jnp.ndarray, axis: int = -1, keepdims: bool = False) -> jnp.ndarray:
    """|v| with a zero gradient (not NaN) at v = 0: the double-``where`` trick."""
    squared = jnp.sum(vectors**2, axis=axis, keepdims=keepdims)
    positive = squared > 0
    safe = jnp.where(positive, squared, 1.0)
    return jnp.where(positive, jnp.sqrt(safe), 0.0)


def polynomial_envelope(distances: jnp.ndarray, cutoff: float, p: int = 6) -> jnp.ndarray:
    """DimeNet envelope u(d), d = r / r_c: 1 at r = 0, and u, u', u'' all vanish at r_c.

    u(d) = 1 - (p+1)(p+2)/2 d^p + p(p+2) d^(p+1) - p(p+1)/2 d^(p+2) for d < 1, else 0.
    Multiplying every edge contribution by u makes energy and forces continuous
    when a neighbour crosses the cutoff, and lets the neighbour list carry edges
    longer than r_c (a Verlet skin) that contribute exactly zero.

    Evaluated as (1 - d)^3 sum_{k<p} C(k+2, 2) d^k, the same polynomial with its triple
    root at d = 1 taken out: the expanded form cancels terms of order 30 near r_c, which
    in float32 leaves no correct digit of u in the last 0.3 % of the cutoff; 1 - d is
    taken as (r_c - r) / r_c, which is exact there.
    """
    inside = distances < cutoff
    distances = jnp.where(inside, distances, 0.0)
    d = distances / cutoff
    remaining = (cutoff - distances) / cutoff  # 1 - d, exact near r_c (not 1 minus a rounded d)
    series = jnp.zeros_like(d)
    for k in reversed(range(p)):  # Horner
        series = series * d + (k + 1) * (k + 2) / 2
    return jnp.where(inside, remaining**3 * series, 0.0)


def smooth_step_down(r, r_on, r_off):
    """1 for r <= r_on, 0 for r >= r_off, 1 - 10t^3 + 15t^4 - 6t^5 between (t the fraction of the way).

    Value, slope and curvature are continuous (C2), so energies switched with
    it have continuous forces and force derivatives.
    """
    t = jnp.clip((r - r_on) / (r_off - r_on), 0.0, 1.0)
    return 1.0 - t**3 * (10.0 - 15.0 * t + 6.0 * t**2)


def bessel_basis(distances: jnp.ndarray, cutoff: float, num_basis: int) -> jnp.ndarray:
    """sqrt(2/r_c) sin(n pi r / r_c) / r, n = 1..num_basis; shape (E, num_basis).

    Finite at r = 0 (the limit n pi / r_c * sqrt(2/r_c)); padding edges get r = 0.
    """
    n = jnp.arange(1, num_basis + 1, dtype=distances.dtype)
    r = distances[:, None]
    small = r < 1e-6
    r_safe = jnp.where(small, 1.0, r)
    argument = n * jnp.pi / cutoff
    value = jnp.where(small, argument, jnp.sin(argument * r_safe) / r_safe)
    return jnp.sqrt(2.0 / cutoff) * value
