"""The radial envelope: the DimeNet polynomial, smooth at the cutoff, and accurate in float32 up to it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlpot.radial import polynomial_envelope

CUTOFF = 5.0


def expanded(d, p):
    """u(d) as DimeNet writes it, in exact rational arithmetic on float64 inputs."""
    from fractions import Fraction

    d = Fraction(float(d))
    value = (
        1 - Fraction((p + 1) * (p + 2), 2) * d**p + p * (p + 2) * d ** (p + 1) - Fraction(p * (p + 1), 2) * d ** (p + 2)
    )
    return float(value)


@pytest.mark.parametrize("p", [5, 6, 8])
def test_is_the_dimenet_polynomial(p):
    d = np.array([0.0, 0.1, 0.37, 0.5, 0.8, 0.95, 0.999, 1.0, 1.2])
    ours = np.asarray(polynomial_envelope(jnp.asarray(d * CUTOFF), CUTOFF, p))
    reference = np.array([expanded(x, p) if x < 1 else 0.0 for x in d])
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-15)


def test_value_slope_and_curvature_vanish_at_the_cutoff():
    """Within delta of r_c, u ~ delta^3, u' ~ delta^2 and u'' ~ delta: a tenth of the distance to r_c
    gives a thousandth, a hundredth and a tenth. Beyond r_c all three are exactly zero."""
    u = lambda r: polynomial_envelope(r, CUTOFF)
    for order, f in enumerate((u, jax.grad(u), jax.grad(jax.grad(u)))):
        near, nearer = (float(f(jnp.float64(CUTOFF * (1 - delta)))) for delta in (1e-3, 1e-4))
        assert near / nearer == pytest.approx(10.0 ** (3 - order), rel=0.01)
        assert float(f(jnp.float64(CUTOFF * 1.01))) == 0.0
    assert float(u(jnp.float64(0.0))) == 1.0


def test_float32_keeps_its_relative_precision_up_to_the_cutoff():
    """Near r_c the expanded form subtracts numbers of order 30 to get u ~ 1e-9: in float32 it has no
    correct digit in the last 0.3 % of the cutoff, and its sign can flip."""
    d = 1.0 - np.logspace(-1, -4, 40)
    r = (d * CUTOFF).astype(np.float32)
    exact = np.array([expanded(x, 6) for x in r.astype(np.float64) / CUTOFF])
    single = np.asarray(polynomial_envelope(jnp.asarray(r), np.float32(CUTOFF)), dtype=np.float64)
    np.testing.assert_allclose(single, exact, rtol=1e-5)
