"""Do a model's charges still suit TIP3P / ff14SB?  Compare them with AM1-BCC on validation molecules.

AM1-BCC charges are what TIP3P water and ff14SB were balanced against. A model whose charges also
learn from QM energies and forces (``train --charges-follow-qm``) may drift from them, most likely
towards gas-phase polarisation (smaller dipoles), which would weaken hydration. This script
measures that drift for each model given, on the model's own validation molecules (never the
benchmarks), against the AM1-BCC charges stored in the training files:

- charge RMSE vs AM1-BCC over all atoms, and the mean signed shift of O, N, polar H (on N/O), other H;
- dipole moment from the charges at the first stored conformation, neutral molecules only (a
  charged molecule's dipole depends on the origin): the ratio sum|mu_model| / sum|mu_AM1-BCC|, the
  median per-molecule ratio, the RMS difference in Debye, and the projected ratio
  sum(mu_model · mu_AM1-BCC) / sum|mu_AM1-BCC|², which random charge errors do not bias upwards
  (they inflate |mu| on average, they do not change its component along mu_AM1-BCC).

Usage: OMP_NUM_THREADS=1 python scripts/charge_compatibility.py runs/v2.pt runs/v2q.pt \
           --data ../shared/data/train-v0.h5 $V1/v1-*.h5 [-o table.md]
"""

from __future__ import annotations

import argparse

import numpy as np
from rdkit import Chem

from grappa_like.api import load_model
from grappa_like.data import DEFAULT_LABEL_PREFERENCE, read_records_by_id
from harness import publish

E_NM_TO_DEBYE = 48.0321  # 1 e·nm in Debye


def atom_groups(molecule) -> dict[str, np.ndarray]:
    """Boolean masks of O, N, polar H (bonded to N or O) and other H atoms."""
    atoms = list(molecule.rdkit_mol.GetAtoms())
    symbol = np.array([atom.GetSymbol() for atom in atoms])
    polar_h = np.array([atom.GetSymbol() == "H" and any(n.GetSymbol() in ("N", "O") for n in atom.GetNeighbors())
                        for atom in atoms])
    return {"O": symbol == "O", "N": symbol == "N", "polar H": polar_h, "other H": (symbol == "H") & ~polar_h}


def compare(model_path: str, data_paths: list[str]) -> dict:
    """Charge and dipole statistics of one model against AM1-BCC on its validation molecules."""
    model = load_model(model_path)
    preference = tuple(model.metadata["training_data"].get("label_preference", DEFAULT_LABEL_PREFERENCE))
    records = [r for r in read_records_by_id(data_paths, model.metadata["validation_molecules"], preference)
               if r.am1bcc_charges is not None]
    squared, n_atoms = 0.0, 0
    shifts = {name: [] for name in ("O", "N", "polar H", "other H")}
    dipoles = []  # (mu_model, mu_am1bcc) vectors in Debye, neutral molecules
    for record, parameters in zip(records, model.predict([r.molecule for r in records])):
        difference = parameters.charges - record.am1bcc_charges
        squared += float((difference ** 2).sum())
        n_atoms += difference.size
        for name, mask in atom_groups(record.molecule).items():
            shifts[name].extend(difference[mask])
        if Chem.GetFormalCharge(record.molecule.rdkit_mol) == 0:
            positions = record.positions[0]
            dipoles.append([charges @ positions * E_NM_TO_DEBYE for charges in (parameters.charges, record.am1bcc_charges)])
    vectors = np.array(dipoles)
    dipoles = np.linalg.norm(vectors, axis=-1)
    return {
        "molecules": len(records), "neutral": len(dipoles),
        "charge_rmse": np.sqrt(squared / n_atoms),
        "shifts": {name: (float(np.mean(values)), len(values)) for name, values in shifts.items()},
        "dipole_ratio_total": dipoles[:, 0].sum() / dipoles[:, 1].sum(),
        "dipole_ratio_median": float(np.median(dipoles[:, 0] / np.maximum(dipoles[:, 1], 1e-6))),
        "dipole_rmse_debye": float(np.sqrt(np.mean((dipoles[:, 0] - dipoles[:, 1]) ** 2))),
        "dipole_ratio_projected": float((vectors[:, 0] * vectors[:, 1]).sum() / (vectors[:, 1] ** 2).sum()),
    }


def markdown(results: dict[str, dict]) -> list[str]:
    """The table's lines, one row per model."""
    groups = ("O", "N", "polar H", "other H")
    lines = ["| model | molecules (neutral) | charge RMSE vs AM1-BCC (e) | "
             + " | ".join(f"mean shift {g} (e)" for g in groups)
             + " | sum abs(mu) / AM1-BCC | median abs(mu) ratio | projected mu ratio | dipole RMSE (D) |",
             "|---" * (8 + len(groups)) + "|"]
    for path, r in results.items():
        lines.append(f"| {path} | {r['molecules']} ({r['neutral']}) | {r['charge_rmse']:.4f} | "
                     + " | ".join(f"{r['shifts'][g][0]:+.4f}" for g in groups)
                     + f" | {r['dipole_ratio_total']:.3f} | {r['dipole_ratio_median']:.3f} | "
                     f"{r['dipole_ratio_projected']:.3f} | {r['dipole_rmse_debye']:.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model files (each is compared on its own validation split)")
    parser.add_argument("--data", nargs="+", required=True, help="training data files holding the validation molecules")
    parser.add_argument("-o", "--output", help="write the Markdown table here too")
    args = parser.parse_args()
    publish(markdown({path: compare(path, args.data) for path in args.models}), args.output)


if __name__ == "__main__":
    main()
