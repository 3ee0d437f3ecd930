"""Torsion barriers of a model against GFN2-xTB along the model's own relaxed scan (test only).

The HTML report's torsion-scan test (:mod:`grappa_like.report`), for a fixed list of bonds whose
barrier users meet everywhere and that near-minimum data does not fix: the amide C-N of
N-methylacetamide, acetanilide and paracetamol, the ester C-O of methyl acetate, the aryl-aryl
bond of biphenyl. Per molecule, the dihedral is the first bond of
:data:`grappa_like.dataset.CONJUGATED_BOND_CLASSES` (:func:`grappa_like.dataset.conjugated_drives`,
the same choice as the builder's ``--conjugated-torsions``); it is scanned with the model's MM
parameters (:func:`grappa_like.report.relaxed_scan`: rigid rotation, then minimisation with the
dihedral restrained), and GFN2-xTB single points are computed on the relaxed geometries.

Columns (kcal/mol; each curve relative to its own lowest point along the path):
- ``MM barrier``: the model's highest point along its scan;
- ``GFN2 there``: GFN2's energy at that same geometry; ``off``: (MM - GFN2 there) / GFN2 there;
- ``GFN2 max``: GFN2's highest point along the model's path;
- ``RMS``: root mean square of (MM - GFN2) over the scan points.
``--gaff2`` adds the same test for GAFF2 + AM1-BCC (AmberTools): its own relaxed scan, GFN2 along it.

Usage: OMP_NUM_THREADS=1 python scripts/barrier_check.py [--model PATH] [--points 24] [--gaff2]
           [--output FILE]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import publish  # noqa: E402

MOLECULES = (
    ("N-methylacetamide", "CC(=O)NC"),
    ("acetanilide", "CC(=O)Nc1ccccc1"),
    ("paracetamol", "CC(=O)Nc1ccc(O)cc1"),
    ("methyl acetate", "CC(=O)OC"),
    ("biphenyl", "c1ccc(cc1)-c1ccccc1"),
)


def barrier_row(name: str, molecule, system, start: np.ndarray, points: int, gfn2) -> list:
    """[dihedral, class, MM barrier, GFN2 there, off, GFN2 max, RMS] of one force field's scan."""
    from grappa_like.dataset import conjugated_drives
    from grappa_like.report import MM_LABEL, relaxed_scan

    drives = conjugated_drives(molecule.rdkit_mol, 1)
    if not drives:
        raise ValueError(f"{name}: no amide, ester, aryl-aryl or conjugated bond to scan")
    [(dihedral, bond_class)] = drives
    scan = relaxed_scan(system, molecule.rdkit_mol, start, dihedral, points)
    mm = scan.energies[MM_LABEL]
    qm, _, failures = gfn2.energies_and_forces(molecule.atomic_numbers, scan.positions, molecule.total_charge)
    if failures:
        raise RuntimeError(f"{name}: GFN2-xTB failed at scan points {sorted(failures)}")
    qm = qm - qm.min()
    top = int(np.argmax(mm))
    return ["-".join(map(str, dihedral)), bond_class, mm[top], qm[top], (mm[top] - qm[top]) / qm[top],
            qm.max(), float(np.sqrt(np.mean((mm - qm) ** 2)))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model file (default: the shipped model)")
    parser.add_argument("--points", type=int, default=24, help="scan points over 360 degrees (default 24)")
    parser.add_argument("--gaff2", action="store_true", help="also GAFF2 + AM1-BCC under the same test")
    parser.add_argument("--output", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)

    import grappa_like
    from grappa_like import md_check
    from grappa_like.labelers import GFN2Labeler

    model = grappa_like.load_model(args.model)
    gfn2 = GFN2Labeler()
    results = grappa_like.parameterize([smiles for _, smiles in MOLECULES], model=model, progress=False)
    lines = [f"Model {os.path.basename(model.path)} (sha256 {model.checksum[:12]}); {gfn2.level_of_theory()}; "
             f"{args.points} scan points; kcal/mol, each curve relative to its lowest point along the path", "",
             "| molecule | force field | dihedral (0-based) | bond | MM barrier | GFN2 there | off | GFN2 max | RMS |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (name, _), result in zip(MOLECULES, results):
        if not result.ok:
            raise RuntimeError(f"{name}: the model could not parameterize it ({result.error})")
        start = result.molecule.conformer_positions(seed=md_check.SEED)
        systems = [("grappa_like", result.to_openmm())]
        if args.gaff2:
            from grappa_like.baselines import gaff2_am1bcc_system
            from grappa_like.molecule import with_positions

            systems.append(("GAFF2", gaff2_am1bcc_system(with_positions(result.molecule.rdkit_mol, start), name=name)))
        for force_field, system in systems:
            row = barrier_row(name, result.molecule, system, start, args.points, gfn2)
            lines.append(f"| {name} | {force_field} | {row[0]} | {row[1]} | {row[2]:.1f} | {row[3]:.1f} | "
                         f"{row[4]:+.0%} | {row[5]:.1f} | {row[6]:.2f} |")
    publish(lines, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
