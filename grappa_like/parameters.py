"""Parameters of one molecule in OpenMM units, as the writers and the torch energy consume them.

Units: bond k kJ/mol/nm², r0 nm; angle k kJ/mol/rad², θ0 rad; torsion amplitudes kJ/mol;
charges e; σ nm; ε kJ/mol. Torsions are stored as signed amplitudes κ_n (column n-1 is
periodicity n): k_n = |κ_n| with phase 0 for κ_n ≥ 0 and π for κ_n < 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grappa_like.interactions import Interactions

# Amber scaling of the 1-4 pairs (DESIGN.md): Coulomb × 1/1.2, LJ × 0.5
COULOMB_14_SCALE = 1.0 / 1.2
LJ_14_SCALE = 0.5


@dataclass
class Parameters:
    """MM parameters of one molecule, aligned with the rows of ``interactions``."""

    interactions: Interactions
    bond_k: np.ndarray          # (n_bonds,)
    bond_r0: np.ndarray         # (n_bonds,)
    angle_k: np.ndarray         # (n_angles,)
    angle_theta0: np.ndarray    # (n_angles,)
    proper_k: np.ndarray        # (n_propers, n_proper_periodicities), signed
    improper_k: np.ndarray      # (n_impropers, n_improper_periodicities), signed
    charges: np.ndarray         # (n_atoms,)
    sigma: np.ndarray           # (n_atoms,)
    epsilon: np.ndarray         # (n_atoms,)
    lj_types: tuple             # (n_atoms,) LJ class names

    @staticmethod
    def torsion_terms(signed_k: np.ndarray):
        """Yield (row, periodicity, phase rad, k kJ/mol) for every torsion term, in a fixed order."""
        for row, amplitudes in enumerate(np.asarray(signed_k).tolist()):
            for column, kappa in enumerate(amplitudes):
                yield row, column + 1, (0.0 if kappa >= 0 else np.pi), abs(kappa)
