"""The device side of the MD loop: many steps per compiled call, stopping early.

``run_chunk`` is a ``lax.while_loop`` over ``step_fn``. Each step is computed
as a *candidate*; the candidate is accepted only if

  * no atom moved more than skin/2 since the neighbour list was built
    (``needs_rebuild``) and the edges inside the cutoff fit their slots
    (``check_fn``); otherwise the candidate's forces may have used a stale or
    truncated list: it is dropped, the chunk stops with ``REBUILD`` and the
    host rebuilds (bigger, if needed) at the last good state and resumes, so
    no step is lost or computed stale;
  * energy and positions are finite, the temperature is below the limit and no
    pair is closer than the minimum distance (otherwise the chunk stops with
    the matching status and the last good state).

All limits are traced arguments, so changing them never recompiles.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from md.integrators import MDState, degrees_of_freedom, temperature_kT

OK, REBUILD, NONFINITE, TOO_HOT, TOO_CLOSE = 0, 1, 2, 3, 4


class Limits(NamedTuple):
    max_steps: int  # steps to take in this call at most
    cutoff: float  # Å
    skin: float  # Å
    max_kT: float  # eV; stop when kT of the candidate exceeds it
    min_distance: float  # Å; stop when a pair is closer


class Reference(NamedTuple):
    positions: jnp.ndarray  # (N, 3) Å, where the neighbour list was built
    cell: jnp.ndarray  # (3, 3) Å, cell at that build


class Chunk(NamedTuple):
    state: MDState  # last accepted state
    steps: jnp.ndarray  # () int, accepted steps in this call
    status: jnp.ndarray  # () int, OK or why the chunk stopped early
    min_distance: jnp.ndarray  # () Å, smallest pair distance seen (inf without a check_fn)
    needed: jnp.ndarray  # () int, most active pairs any candidate asked for (sizes the next rebuild)
    cell_share: jnp.ndarray  # () Å, what the cell's change used of the skin in the last candidate (rebuild_terms)


def rebuild_terms(positions, cell, reference: Reference, cutoff, skin):
    """(2 max|d|, (cutoff + skin) ||M - I||_F): what atoms' own moves and what the cell's change use up
    of the skin since the build. ``needs_rebuild`` is their sum against ``skin``; apart, they say
    which one to blame when a single step uses it all (the timestep, or an NPT barostat's speed)."""
    same = jnp.all(cell == reference.cell)
    safe_ref = jnp.where(same, jnp.eye(3), reference.cell)
    m = jnp.where(same, jnp.eye(3), jnp.linalg.solve(safe_ref, jnp.where(same, jnp.eye(3), cell)))
    moved = positions - reference.positions @ m
    largest = jnp.sqrt(jnp.max(jnp.sum(moved**2, axis=-1)))
    strain = jnp.sqrt(jnp.sum((m - jnp.eye(3)) ** 2))
    return 2 * largest, (cutoff + skin) * strain


def needs_rebuild(positions, cell, reference: Reference, cutoff, skin):
    """True when a pair outside cutoff + skin at the build may now be inside the cutoff.

    With M = cell_ref^-1 cell (identity at constant cell) the displacement
    beyond the affine cell change is d_i = r_i - r_i,ref M, using unwrapped
    positions (no minimum image needed). A pair's length changes by at most
    2 max|d| + (cutoff + skin) ||M - I||_F, so rebuild when that exceeds skin.
    At constant cell this is the usual "an atom moved more than skin/2".
    """
    moved, strained = rebuild_terms(positions, cell, reference, cutoff, skin)
    return moved + strained > skin


class Guarded(NamedTuple):
    """What ``guarded`` force functions take as force_args: the real ones and what staleness needs."""

    force_args: object
    reference: Reference
    cutoff: float
    skin: float


def guarded(force_fn):
    """``force_fn`` that skips the model (zeros) at positions the current list is already stale for.

    Such a candidate step is dropped for a rebuild anyway (``_status``), so its
    forces would be wasted: one full model evaluation per rebuild, a third of
    all evaluations when atoms fly fast (free-flying H at 300 K rebuilds every
    ~3 steps with a 0.5 Å skin). The model runs under ``lax.cond``: only the
    branch taken is executed.
    """

    def guarded_force_fn(positions, cell, args: Guarded):
        def skip(positions, cell, force_args):
            shapes = jax.eval_shape(force_fn, positions, cell, force_args)
            return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        stale = needs_rebuild(positions, cell, args.reference, args.cutoff, args.skin)
        return jax.lax.cond(stale, skip, force_fn, positions, cell, args.force_args)

    return guarded_force_fn


def _status(candidate: MDState, stale, limits: Limits, distance, dof):
    finite = jnp.isfinite(candidate.energy) & jnp.all(jnp.isfinite(candidate.positions))
    finite &= jnp.all(jnp.isfinite(candidate.momenta))
    hot = temperature_kT(candidate.momenta, candidate.masses, dof) > limits.max_kT
    status = jnp.where(distance < limits.min_distance, TOO_CLOSE, OK)
    status = jnp.where(hot, TOO_HOT, status)
    status = jnp.where(finite, status, NONFINITE)
    # A stale or overflowing list can explain any of the above: rebuild first, judge after.
    return jnp.where(stale, REBUILD, status)


def run_chunk(
    step_fn,
    check_fn,
    state: MDState,
    params,
    force_args,
    reference: Reference,
    limits: Limits,
    refresh=False,
) -> Chunk:
    """Up to ``limits.max_steps`` steps; see the module docstring for when it stops early.

    ``refresh`` (traced bool) first recomputes energy and forces at the
    current positions: that is how a new state is initialised. It is done as
    one step of zero length (every integrator then only recomputes forces),
    so the model appears once in the compiled program: a separate refresh
    call would double the compile time of a large model. A refresh is checked
    like a step (finite, not too hot or close) but not counted as one.
    ``step_fn`` uses a ``guarded`` force_fn: it gets ``Guarded`` force_args.
    """
    force_args = Guarded(force_args, reference, limits.cutoff, limits.skin)
    dof = degrees_of_freedom(params, state.masses.shape[0])  # the overheating guard counts what the log counts

    def cond(carry):
        chunk, pending = carry
        return ((chunk.steps < limits.max_steps) | pending) & (chunk.status == OK)

    def body(carry):
        chunk, pending = carry
        dt = jnp.where(pending, jnp.zeros_like(params.dt), params.dt)
        candidate = step_fn(chunk.state, params._replace(dt=dt), force_args)
        candidate = candidate._replace(step=jnp.where(pending, chunk.state.step, candidate.step))
        if check_fn is None:
            distance, overflow, needed = jnp.asarray(jnp.inf), jnp.asarray(False), jnp.asarray(0)
        else:
            distance, overflow, needed = check_fn(candidate.positions, candidate.cell, force_args.force_args)
        moved, strained = rebuild_terms(candidate.positions, candidate.cell, reference, limits.cutoff, limits.skin)
        status = _status(candidate, (moved + strained > limits.skin) | overflow, limits, distance, dof)
        accept = status == OK
        state = jax.tree_util.tree_map(lambda new, old: jnp.where(accept, new, old), candidate, chunk.state)
        smallest = jnp.where(accept, jnp.minimum(chunk.min_distance, distance), chunk.min_distance)
        needed = jnp.maximum(chunk.needed, needed.astype(chunk.needed.dtype))
        counted = (accept & ~pending).astype(chunk.steps.dtype)
        return Chunk(state, chunk.steps + counted, status, smallest, needed, strained), jnp.zeros_like(pending)

    zero = jnp.asarray(0, jnp.int64)
    start = Chunk(
        state, zero, jnp.asarray(OK, jnp.int64), jnp.asarray(jnp.inf, jnp.float64), zero, jnp.asarray(0.0, jnp.float64)
    )
    chunk, _ = jax.lax.while_loop(cond, body, (start, jnp.asarray(refresh, bool)))
    return chunk
