"""Float32 means float32 on every backend: importing mlpot lowers matrix products at HIGHEST precision.

JAX's default lets GPUs round float32 operands to TF32 (10-bit mantissa): the
GPU-trained ethanol model's validation energy MAE read 0.91 meV on an H100 that
way against 0.76 meV in float32. The precision is fixed when a function is
lowered, so the lowered program shows it on a CPU as well. A user's explicit ``JAX_DEFAULT_MATMUL_PRECISION`` still wins.
"""

import os
import subprocess
import sys

PROBE = """
import mlpot, jax, jax.numpy as jnp
x = jnp.ones((4, 4), jnp.float32)
print(jax.jit(jnp.dot).lower(x, x).as_text())
"""


def lowered_dot(extra_env: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k != "JAX_DEFAULT_MATMUL_PRECISION"} | extra_env
    out = subprocess.run(
        [sys.executable, "-c", PROBE], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_importing_mlpot_makes_float32_matmuls_full_precision():
    assert "HIGHEST" in lowered_dot({})


def test_an_explicit_precision_in_the_environment_is_kept():
    assert "HIGHEST" not in lowered_dot({"JAX_DEFAULT_MATMUL_PRECISION": "tensorfloat32"})


def test_every_weight_follows_the_network_dtype():
    """dtype: float64 must mean float64 weights (their updates), not float32 weights promoted in the forward pass."""
    import jax

    from mlpot.potential import ModelConfig, Potential

    for name, hyper in (("painn", {"features": 8, "num_interactions": 2}), ("mace", {"features": 8})):
        for dtype in ("float32", "float64"):
            params = Potential.create(ModelConfig(name, 4.0, (1, 8), hyper, dtype=dtype)).params
            assert {str(leaf.dtype) for leaf in jax.tree_util.tree_leaves(params)} == {dtype}, (name, dtype)


def test_float32_weights_under_a_float64_config_run_wholly_in_float64():
    """The species embedding reads its table in the table's own type: float32 weights under a float64
    config (a float32 file run as float64) left two matrix products in float32, 1e-7 eV off."""
    import jax
    import numpy as np
    from ase.build import molecule

    from mlpot.models.committee import assemble, members
    from mlpot.potential import ModelConfig, Potential

    atoms = molecule("H2O")
    atoms.rattle(0.05, seed=1)
    for name, hyper in (("painn", {"features": 8, "num_interactions": 2}), ("mace", {"features": 8})):
        single = Potential.create(ModelConfig(name, 4.0, (1, 8), hyper, dtype="float32"), seed=2)
        weights64 = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), single.params)
        exact = Potential(single.config.replace(dtype="float64"), weights64).predict(atoms)
        by_hand = Potential(single.config.replace(dtype="float64"), single.params).predict(atoms)
        for got in (by_hand, single.with_dtype("float64").predict(atoms)):
            assert abs(float(got.energy[0]) - float(exact.energy[0])) < 1e-12, name
            np.testing.assert_allclose(got.forces, exact.forces, rtol=0, atol=1e-12)
        float32 = single.predict(atoms)
        assert abs(float(float32.energy[0]) - float(exact.energy[0])) > 1e-10  # float32 really differs
    pair = assemble([single, single.replace_params(jax.tree_util.tree_map(lambda x: 1.01 * x, single.params))])
    assert {m.config.dtype for m in members(pair.with_dtype("float64"))} == {"float64"}
