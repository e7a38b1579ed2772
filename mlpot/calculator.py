"""ASE calculator: the one stateful adapter between ASE and a ``Potential``.

Padding capacities grow (to the next bucket, with headroom) and shrink only for a
structure that needs under a quarter of them, so an MD run or a relaxation
compiles once per stress/no-stress variant in the usual case, and a handful of
times at most. ``compile_count`` reports it.
Calculators of one model share their compiled programs, and a calculator that
outgrows its capacity first takes one that another has already compiled, if
it fits without padding to more than twice the size needed: the images of a
NEB, each with its own calculator, then run one program.

A committee (``mlpot committee``) is evaluated member by member, so that its
results also say how far the members disagree: ``energy_std`` (eV) and
``forces_std`` (N x 3, eV/Å), the population standard deviations over members.
A large spread marks a structure unlike the training data (what active learning
picks, and where an MD run should not be trusted). Same cost as the committee
call: one force call per member.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import numpy as np
from ase.calculators.calculator import Calculator as ASECalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from mlpot.graph import bucket_size, check_atoms, has_volume, neighbour_pairs, pad_graph, species_indices
from mlpot.models.committee import members
from mlpot.potential import Potential, load, require_x64, shared_predict_fn

# a capacity this many times the size a structure needs is dropped for one that fits it (the old one stays
# compiled, so structures that alternate in size compile each size once)
SHRINK_BELOW = 4

# model config (JSON) -> the (nodes, edges) capacities its Calculators have compiled programs for
_COMPILED_CAPACITIES: dict[str, set] = {}


class Calculator(ASECalculator):
    """``mlpot.Calculator(potential_or_path)``: energy, free_energy, forces, stress, energies;
    for a committee also energy_std and forces_std (see the module docstring).

    Stress (eV/Å^3, Voigt, ASE sign) is (1/V) dE/dε for a cell of rank 3 that is periodic in at
    least one direction. For a slab or a wire in a box with vacuum it is what a plane-wave DFT code
    gives for that box: V is the box's volume, and along a vacuum direction the stress is the atoms'
    own virial (zero once they are relaxed). So a 2-D material's lattice relaxes in plane with
    ``FrechetCellFilter(atoms, mask=[1, 1, 0, 0, 0, 1])``. A molecule (no periodic direction) or a
    cell of rank < 3 has none: asking for it raises ``PropertyNotImplementedError``.
    """

    implemented_properties = ("energy", "free_energy", "forces", "stress", "energies", "energy_std", "forces_std")

    def __init__(self, potential: Potential | str | Path, edge_headroom: float = 1.2, **kwargs):
        super().__init__(**kwargs)
        if not (edge_headroom >= 1 and math.isfinite(edge_headroom)):
            raise ValueError(f"edge_headroom must be >= 1 and finite (room over the edges found), got {edge_headroom}")
        self.potential = potential if isinstance(potential, Potential) else load(potential)
        self.edge_headroom = edge_headroom
        self._members = members(self.potential)  # [the model itself] unless it is a committee
        if len(self._members) == 1:
            # ASE asks again (a whole force call) for an advertised property missing from the results
            self.implemented_properties = tuple(p for p in self.implemented_properties if not p.endswith("_std"))
        self._predict = self._predict_fns()
        self._capacity = (0, 0)  # (nodes, edges): grows, and shrinks only for a far smaller structure
        key = self.potential.config.key()
        self._compiled_capacities = _COMPILED_CAPACITIES.setdefault(key, set())
        self._compiles = 0

    def _predict_fns(self) -> list[dict]:
        # shared by every Calculator of this model: a new one per structure compiles nothing new
        return [{flag: shared_predict_fn(m, flag) for flag in (True, False)} for m in self._members]

    def set(self, **kwargs):
        """ASE's parameter setter: an mlpot model has none (its file fixes cutoff, species and dtype), so
        a keyword such as ``cutoff=`` or ``dtype=`` is refused instead of being stored and ignored."""
        if kwargs:
            raise TypeError(
                f"mlpot.Calculator takes no parameters ({', '.join(sorted(kwargs))}): the model file sets the "
                "cutoff, species and dtype; for float64, load the model and pass "
                "potential.with_dtype('float64')"
            )
        return {}

    # The compiled functions are not picklable (closures), and need not be: they are rebuilt from the
    # model on the other side (multiprocessing over Atoms that carry this calculator).
    def __getstate__(self):
        return {key: value for key, value in self.__dict__.items() if key != "_predict"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._predict = self._predict_fns()

    @property
    def compile_count(self) -> int:
        """How many programs this calculator's calls have compiled (all variants)."""
        return self._compiles

    def _capacities(self, num_atoms: int, num_edges: int) -> tuple[int, int]:
        nodes, edges = self._capacity
        needed = (bucket_size(num_atoms + 1), bucket_size(int(num_edges * self.edge_headroom) + 1))
        if nodes > SHRINK_BELOW * needed[0] or edges > SHRINK_BELOW * needed[1]:
            # the primitive cell after a supercell: padded to the supercell, each call would cost as much
            nodes, edges = 0, 0
        elif num_atoms + 1 <= nodes and num_edges <= edges:
            return nodes, edges
        if num_atoms + 1 > nodes:
            nodes = bucket_size(num_atoms + 1)
        if num_edges > edges:
            edges = bucket_size(int(num_edges * self.edge_headroom) + 1)
        fitting = [
            (n, e)
            for n, e in self._compiled_capacities
            if num_atoms + 1 <= n <= 2 * nodes and num_edges <= e <= 2 * edges
        ]
        self._capacity = min(fitting, key=lambda c: c[0] * c[1]) if fitting else (nodes, edges)
        self._compiled_capacities.add(self._capacity)
        return self._capacity

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        require_x64("mlpot.Calculator")
        atoms = self.atoms
        check_atoms(atoms, "atoms given to mlpot.Calculator")
        periodic = has_volume(atoms)  # the stress is defined
        if "stress" in properties and not periodic:
            pbc = "".join("T" if p else "F" for p in atoms.pbc)
            raise PropertyNotImplementedError(
                f"stress needs a cell of three independent vectors, periodic in at least one direction (a slab "
                f"needs its box with vacuum as the cell); these atoms have pbc {pbc} and a cell of volume "
                f"{abs(np.linalg.det(atoms.cell.array)):.4g} Å^3"
            )
        config = self.potential.config
        where = "atoms given to mlpot.Calculator"
        idx = species_indices(atoms.numbers, config.species, where)
        i, j, shifts = neighbour_pairs(atoms, config.cutoff, where)
        nodes, edges = self._capacities(len(atoms), len(i))
        graph = pad_graph([(atoms, idx, i, j, shifts)], nodes, edges, 2)
        n = len(atoms)
        outs = []
        for member, predict in zip(self._members, self._predict):
            before = predict[periodic]._cache_size()
            out = predict[periodic](member.params, graph)
            self._compiles += predict[periodic]._cache_size() - before
            outs.append(out)
        # to the host whole, then sliced: a slice of a device array compiles a program per atom count
        outs = [jax.tree_util.tree_map(lambda x: np.asarray(x, dtype=np.float64), out) for out in outs]
        energies = np.array([out.energy[0] for out in outs])
        forces = np.stack([out.forces[:n] for out in outs])
        stresses = np.stack([out.stress[0] for out in outs]) if periodic else np.zeros(0)
        # forces too: a finite energy can have NaN gradients (atoms ~1e-6 Å apart overflow float32 layers)
        for name, values in (("energy", energies), ("forces", forces), ("stress", stresses)):
            if not np.isfinite(values).all():
                raise FloatingPointError(f"mlpot.Calculator: the model returned non-finite {name}")
        energy = float(energies.mean())
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": forces.mean(axis=0),
            "energies": np.mean([out.energies[:n] for out in outs], axis=0),
        }
        if periodic:
            self.results["stress"] = full_3x3_to_voigt_6_stress(stresses.mean(axis=0))
        if len(outs) > 1:
            self.results["energy_std"] = float(energies.std())
            self.results["forces_std"] = forces.std(axis=0)
