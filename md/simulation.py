"""The host side of the MD loop: chunks on the device, neighbour rebuilds and output here.

``Simulation`` holds the current ``MDState``, the neighbour-list reference and
the observers (trajectory, log, restart, user callbacks). ``run(steps)``
calls the compiled chunk up to the next observer step; a chunk that stops for
``REBUILD`` triggers a host rebuild at the last good state and resumes; one
that stops for a safety reason raises ``MDError`` naming the step, after the
observers have written everything up to the last good frame.
"""

from __future__ import annotations

import time
from functools import partial

import ase.units
import jax
import jax.numpy as jnp
import numpy as np
from ase import Atoms

from md.barostats import barostat_energy, pressure
from md.ensembles import BAROSTATS, CHAINED, MTK, USES, integrator
from md.forces import Forces
from md.integrators import Params, blank_state, chain_energy, degrees_of_freedom, kinetic_energy
from md.loop import NONFINITE, OK, REBUILD, TOO_CLOSE, TOO_HOT, Limits, Reference, guarded, run_chunk
from md.velocities import check_masses, mobility
from mlpot.graph import InputError, neighbour_search
from mlpot.potential import require_x64

_COMPILED: dict = {}  # insertion order = least recently used first
COMPILED_SIZE = 16  # a program per model: an active-learning loop runs MD with many models


class MDError(RuntimeError):
    """The simulation became unphysical; the message names the step."""


def _compiled(ensemble: str, forces: Forces, chain_length: int):
    """One jitted chunk per ensemble and force model, shared by all simulations."""
    key = (ensemble, forces.cache_key, chain_length)
    if key in _COMPILED:
        _COMPILED[key] = _COMPILED.pop(key)  # most recently used last
    else:
        if len(_COMPILED) >= COMPILED_SIZE:
            _COMPILED.pop(next(iter(_COMPILED)))
        pair = integrator(ensemble, guarded(forces.force_fn))
        _COMPILED[key] = jax.jit(partial(run_chunk, pair.step_fn, forces.check_fn))
    return _COMPILED[key]


# What each setting must be where its ensemble reads it (``USES``); finite besides (NaN fails every
# comparison, inf passes some). Outside it the run stops at a NaN blamed on the structure or timestep.
_SETTING_RULES = {
    "dt": (lambda v: v > 0, "finite and > 0"),
    "kT": (lambda v: v >= 0, "finite and >= 0"),
    "friction": (lambda v: v >= 0, "finite and >= 0"),
    "tdamp": (lambda v: v > 0, "finite and > 0"),
    "pressure": (lambda v: True, "finite"),
    "taup": (lambda v: v > 0, "finite and > 0"),
    "compressibility": (lambda v: v >= 0, "finite and >= 0"),
}


def check_settings(ensemble: str, params: Params, names: dict | None = None) -> None:
    """Refuse (ValueError) a setting ``ensemble`` reads but cannot run with, named as the caller gave it.

    ``names``: ``Params`` field -> (argument name, factor from the field's unit to the argument's, unit
    shown); by default the field itself (``Simulation`` takes ``Params``).
    """
    names = {**{field: (field, 1.0, "") for field in Params._fields}, **(names or {})}
    for field in USES[ensemble]:
        value = float(getattr(params, field))
        allowed, rule = _SETTING_RULES[field]
        if not (np.isfinite(value) and allowed(value)):
            name, factor, unit = names[field]
            raise ValueError(f"{name}: must be {rule} for {ensemble}, not {value * factor:g}{unit}")
    if ensemble in CHAINED and not float(params.kT) > 0:
        # The chain masses are kT tdamp^2: a 0 K target has none (NaN on the first step).
        name, factor, unit = names["kT"]
        raise ValueError(
            f"{name}: {ensemble}'s Nosé-Hoover chains need a target temperature above 0 K, not "
            f"{float(params.kT) * factor:g}{unit}; to quench, use Langevin at a low temperature or an "
            "optimiser (ase.optimize)"
        )


class Simulation:
    def __init__(
        self,
        forces: Forces,
        atoms: Atoms,
        ensemble: str,
        params: Params,
        seed: int = 0,
        max_temperature_K: float | None = None,
        min_distance: float = 0.5,
        chain_length: int = 3,
        rebuild_every_step: bool = False,
        restart: dict | None = None,
    ):
        require_x64("md.Simulation")  # MD state is float64: silently float32 otherwise
        if ensemble in BAROSTATS and not forces.with_stress:
            # An energy-only force_fn returns zero stress: the barostat would see only the ideal-gas
            # pressure and silently collapse the box.
            raise ValueError(
                "NPT needs the stress: build the forces with compute_stress=True "
                "(potential_forces / graph_forces), or fixed_forces(..., with_stress=True)"
            )
        check_settings(ensemble, params)
        self.forces, self.ensemble, self.params = forces, ensemble, params
        self._dof_given = float(params.dof)
        self.template = atoms.copy()
        self.template.calc = None
        self.rebuild_every_step = rebuild_every_step
        self._chunk = _compiled(ensemble, forces, chain_length)
        self.chain_length = chain_length
        target_K = float(params.kT) / ase.units.kB
        max_temperature_K = max_temperature_K or max(10_000.0, 5 * target_K)
        self.max_kT, self.min_distance = ase.units.kB * max_temperature_K, min_distance
        self.observers: list = []
        self.timings = {"chunk_s": 0.0, "chunks": 0, "steps": 0}
        self._compiles_at_start = self._chunk._cache_size()
        if restart is None:
            self.state = self._start_state(atoms, jax.random.PRNGKey(seed), 0)
        else:
            self.state = jax.tree_util.tree_map(jnp.asarray, restart["state"])
            self._build(*restart["reference"])  # the same list the saved run was using...
            self._fresh = False  # ...which atoms may since have moved away from
        self.start_step = int(self.state.step)

    def _start_state(self, atoms: Atoms, key, step: int, edited: bool = False):
        """A state at ``atoms`` with fresh neighbours and forces (a zero-length chunk computes them);
        ``edited``: atoms a caller changed mid-run (``reset``), which the errors name instead of the start."""
        check_masses(atoms, f"atoms as edited at step {step}" if edited else "atoms")
        mobile = mobility(atoms)
        if not mobile.all() and self.ensemble in BAROSTATS:
            raise ValueError(
                f"{self.ensemble}: the atoms carry FixAtoms/FixCartesian constraints, and a barostat moves every "
                "atom with the cell; run NPT without them, or NVT (nose-hoover, langevin) with them"
            )
        # 0 means 3N, which would count the held components as moving: count the free ones instead.
        held_dof = float(mobile.sum()) if not mobile.all() else 0.0
        self.params = self.params._replace(dof=jnp.asarray(self._dof_given or held_dof, jnp.float64))
        self._build(atoms.positions, atoms.cell.array)
        state = blank_state(
            atoms.positions, atoms.get_momenta(), atoms.get_masses(), atoms.cell.array, key, self.chain_length, mobile
        )
        state = state._replace(step=jnp.asarray(step, jnp.int64))
        chunk = self._chunk(state, self.params, self.force_args, self.reference, self._limits(0), True)
        if int(chunk.status) == REBUILD and self.neighbours is not None:
            # the device counted more active pairs than the host list made room for (pairs within a
            # rounding step of the cutoff): the run loop's answer, a bigger list, applies at the start too
            self._build(atoms.positions, atoms.cell.array, int(chunk.needed))
            chunk = self._chunk(state, self.params, self.force_args, self.reference, self._limits(0), True)
        if int(chunk.status) == REBUILD:
            raise MDError(self._too_far_message(step, float(chunk.cell_share)))
        if int(chunk.status) != OK:
            self.state = chunk.state  # the message names the closest pair in it
            raise MDError(self._error_message(int(chunk.status), step, start=not edited, edited=edited))
        return chunk.state

    def reset(self, atoms: Atoms) -> None:
        """Continue from ``atoms`` (positions, momenta, masses, cell edited by the caller).

        The step counter, the random key, the thermostat chain and the barostat (the cell's
        momentum and its chain) carry on: ``atoms`` cannot hold them, and an edit such as
        ``atoms.wrap()`` in a callback must not stop the barostat (ASE's MTK classes ignore edits).
        """
        if len(atoms) != len(self.template) or (atoms.numbers != self.template.numbers).any():
            raise ValueError(
                "atoms: the number or kinds of atoms changed since the simulation started; make a new driver "
                "(or Simulation)"
            )
        self.template = atoms.copy()
        self.template.calc = None
        carried = ("chain_positions", "chain_momenta", "cell_momentum", "cell_chain_positions", "cell_chain_momenta")
        kept = {k: getattr(self.state, k) for k in carried}
        self.state = self._start_state(atoms, self.state.key, int(self.state.step), edited=True)._replace(**kept)

    # -- neighbour list ---------------------------------------------------------------------------
    def _build(self, positions, cell, needed: int = 0) -> None:
        positions, cell = np.asarray(positions, np.float64), np.asarray(cell, np.float64)
        self.force_args = self.forces.build(positions, cell, needed)
        self.reference = Reference(jnp.asarray(positions), jnp.asarray(cell))
        self._fresh = True  # a REBUILD before any step means one step moves atoms > skin/2

    def _rebuild_mid_run(self, step: int, needed: int = 0) -> None:
        """A pair the host search refuses (two atoms on one spot, possible with min_distance 0) came
        from the run, not from the input: it stops the run like any other collapse."""
        try:
            self._build(self.state.positions, self.state.cell, needed)
        except InputError as err:
            raise MDError(
                f"MD stopped at step {step}: {err}. Output written so far is intact. A distance check "
                "(min_distance, --min-distance) stops a run before atoms merge; try a smaller timestep, or "
                "check the model/structure."
            ) from None

    @property
    def neighbours(self):
        return self.forces.neighbours

    @property
    def compile_count(self) -> int:
        """Chunk programs compiled since this simulation started (1 + capacity growths, usually)."""
        return self._chunk._cache_size() - self._compiles_at_start

    # -- observers ---------------------------------------------------------------------------------
    def attach(self, function, interval: int = 1) -> None:
        """Call ``function(simulation)`` after every ``interval`` steps (counted from step 0)."""
        if interval < 1:
            raise ValueError(f"interval must be >= 1, not {interval}")
        self.observers.append((function, int(interval)))

    def detach(self, function) -> None:
        """Stop calling ``function`` (and stopping chunks for it); it may detach itself while called."""
        self.observers = [(f, k) for f, k in self.observers if f is not function]

    def _notify(self, step: int) -> None:
        for function, interval in list(self.observers):  # a copy: an observer may detach itself
            if step % interval == 0:
                function(self)

    # -- the loop -----------------------------------------------------------------------------------
    def _limits(self, max_steps: int) -> Limits:
        return Limits(
            jnp.asarray(max_steps, jnp.int64),
            jnp.asarray(self.forces.cutoff, jnp.float64),
            jnp.asarray(self.forces.skin, jnp.float64),
            jnp.asarray(self.max_kT, jnp.float64),
            jnp.asarray(self.min_distance, jnp.float64),
        )

    def _next_stop(self, step: int, last: int) -> int:
        stops = [last] + [(step // k + 1) * k for _, k in self.observers]
        return min(stops) if not self.rebuild_every_step else step + 1

    def run(self, steps: int, progress=None) -> None:
        """Advance ``steps`` steps; ``progress(n)`` (e.g. tqdm.update) is told of accepted steps."""
        step = int(self.state.step)
        last = step + int(steps)
        while step < last:
            if self.rebuild_every_step:
                self._rebuild_mid_run(step)
            start = time.perf_counter()
            chunk = self._chunk(
                self.state,
                self.params,
                self.force_args,
                self.reference,
                self._limits(self._next_stop(step, last) - step),
                False,
            )
            done, status = int(chunk.steps), int(chunk.status)
            self.timings["chunk_s"] += time.perf_counter() - start
            self.timings["chunks"] += 1
            self.timings["steps"] += done
            self.state = chunk.state
            step += done
            self._fresh = self._fresh and done == 0
            if progress is not None and done:
                progress(done)
            if status == REBUILD:
                # Right after a rebuild only a displacement > skin/2 is an error; more active pairs than
                # slots (density rising, or rebuild_every_step's tight fit) just needs a bigger list.
                overflowed = self.neighbours is not None and int(chunk.needed) > self.neighbours.capacity[1]
                if done == 0 and self._fresh and not overflowed:
                    raise MDError(self._too_far_message(step + 1, float(chunk.cell_share)))
                self._rebuild_mid_run(step, int(chunk.needed))
            if done:
                self._notify(step)  # observers only act on multiples of their interval
            if status >= NONFINITE:
                raise MDError(self._error_message(status, step + 1))

    def _too_far_message(self, step: int, cell_share: float) -> str:
        """Why one step right after a rebuild already needs another: the atoms, or the cell (NPT)."""
        skin = self.forces.skin
        if cell_share > skin / 2:  # the cell's change alone used more than half the skin
            return (
                f"step {step}: the cell changed too much in one step right after a neighbour rebuild (it used "
                f"{cell_share:.3g} Å of the {skin:.3g} Å skin); the barostat is too fast for this timestep: "
                "raise taup (pdamp in the ASE-style drivers) or reduce the timestep"
            )
        return (
            f"step {step}: an atom moved more than skin/2 = {skin / 2:.3g} Å "
            "in one step right after a neighbour rebuild; reduce the timestep or raise the skin"
        )

    def _closest_pair(self) -> str:
        """', closest pair in the last good frame: atoms i (X) and j (Y) at d Å', or '' if none is near."""
        atoms = self.atoms()
        i, j, _, d = neighbour_search(atoms, max(2.0 * self.min_distance, 1.0))
        if len(i) == 0:
            return ""
        k = int(np.argmin(d))
        a, b = sorted((int(i[k]), int(j[k])))
        symbols = atoms.get_chemical_symbols()
        return f", closest pair in the last good frame: atoms {a} ({symbols[a]}) and {b} ({symbols[b]}) at {d[k]:.3f} Å"

    def _error_message(self, status: int, step: int, start: bool = False, edited: bool = False) -> str:
        reason = {
            NONFINITE: "energy, positions or momenta became NaN/inf",
            TOO_HOT: f"temperature exceeded {self.max_kT / ase.units.kB:.0f} K (the limit: --max-temperature, "
            "max_temperature_K= in Python; raise it for a run this hot on purpose)",
            TOO_CLOSE: f"two atoms came closer than {self.min_distance} Å",
        }[status]
        if status == TOO_CLOSE:
            reason += self._closest_pair()
        if start:
            return f"MD cannot start: in the initial structure, {reason}. Check the structure and the model."
        if edited:
            return (
                f"MD cannot go on from step {step}: in the atoms as edited then (by a callback, or between runs), "
                f"{reason}. The run up to step {step} is intact; check the edit."
            )
        return (
            f"MD stopped at step {step}: {reason}. The last good frame is step {step - 1}; "
            "output written so far is intact. Try a smaller timestep or check the model/structure."
        )

    # -- views of the state ----------------------------------------------------------------------------
    def thermo(self) -> dict:
        """Host numbers for the current state (eV, K, eV/Å^3, Å^3)."""
        s = self.state
        epot, ekin = float(s.energy), float(kinetic_energy(s.momenta, s.masses))
        row = {
            "step": int(s.step),
            "time_fs": int(s.step) * float(self.params.dt) / ase.units.fs,
            "epot": epot,
            "ekin": ekin,
            "etot": epot + ekin,
            "temperature": 2 * ekin / (float(degrees_of_freedom(self.params, len(self.template))) * ase.units.kB),
        }
        if self.ensemble in BAROSTATS:  # only they compute the stress the pressure needs
            row["volume"] = abs(float(np.linalg.det(np.asarray(s.cell))))
            row["pressure"] = float(pressure(s))
        if self.ensemble in CHAINED:
            row["conserved"] = row["etot"] + float(chain_energy(s, self.params))
        if self.ensemble in MTK:
            row["conserved"] += float(barostat_energy(s, self.params, isotropic=MTK[self.ensemble]))
        return row

    def atoms(self) -> Atoms:
        """A copy of the current configuration (positions unwrapped, momenta, cell)."""
        atoms = self.template.copy()
        atoms.positions = np.asarray(self.state.positions)
        atoms.set_momenta(np.asarray(self.state.momenta))
        if atoms.pbc.any():
            atoms.set_cell(np.asarray(self.state.cell), scale_atoms=False)
        return atoms
