"""ASE calculator: the one stateful adapter between ASE and a ``Potential``.

Padding capacities only ever grow (to the next bucket, with headroom), so an
MD run or a relaxation compiles once per stress/no-stress variant in the
usual case, and a handful of times at most. ``compile_count`` reports it.

A committee (``mlpot committee``) is evaluated member by member, so that its
results also say how far the members disagree: ``energy_std`` (eV) and
``forces_std`` (N x 3, eV/Å), the population standard deviations over members.
A large spread marks a structure unlike the training data (what active learning
picks, and where an MD run should not be trusted). Same cost as the committee
call: one force call per member.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator as ASECalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from mlpot.graph import bucket_size, check_atoms, neighbour_pairs, pad_graph, species_indices
from mlpot.models.committee import members
from mlpot.potential import Potential, load, require_x64, shared_predict_fn


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
        if not edge_headroom >= 1:
            raise ValueError(f"edge_headroom must be >= 1 (room over the edges found), got {edge_headroom}")
        self.potential = potential if isinstance(potential, Potential) else load(potential)
        self.edge_headroom = edge_headroom
        self._members = members(self.potential)  # [the model itself] unless it is a committee
        self._predict = self._predict_fns()
        self._capacity = (0, 0)  # (nodes, edges), only grows
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
        if num_atoms + 1 > nodes:
            nodes = bucket_size(num_atoms + 1)
        if num_edges > edges:
            edges = bucket_size(int(num_edges * self.edge_headroom) + 1)
        self._capacity = (nodes, edges)
        return nodes, edges

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        require_x64("mlpot.Calculator")
        atoms = self.atoms
        check_atoms(atoms, "atoms given to mlpot.Calculator")
        periodic = bool(any(atoms.pbc)) and atoms.cell.rank == 3  # the stress is defined
        if "stress" in properties and not periodic:
            pbc = "".join("T" if p else "F" for p in atoms.pbc)
            raise PropertyNotImplementedError(
                f"stress needs a cell of rank 3 periodic in at least one direction (a slab needs its box "
                f"with vacuum as the cell); these atoms have pbc {pbc} and a cell of rank {atoms.cell.rank}"
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
        energies = np.array([float(out.energy[0]) for out in outs])
        if not np.isfinite(energies).all():
            raise FloatingPointError("mlpot.Calculator: the model returned a non-finite energy")
        forces = np.stack([np.asarray(out.forces[:n], dtype=np.float64) for out in outs])
        energy = float(energies.mean())
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": forces.mean(axis=0),
            "energies": np.mean([np.asarray(out.energies[:n], dtype=np.float64) for out in outs], axis=0),
        }
        if periodic:
            stress = np.mean([np.asarray(out.stress[0], dtype=np.float64) for out in outs], axis=0)
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)
        if len(outs) > 1:
            self.results["energy_std"] = float(energies.std())
            self.results["forces_std"] = forces.std(axis=0)
