"""How far are the training labels' levels of theory from the DFT labels of the benchmark sets?

The model is trained on ANI-2x labels (neutral H C N O F S Cl molecules) and GFN2-xTB labels
(charged molecules, P/Br/I), so no model trained on them can be expected to beat the teachers'
own errors against DFT. This script measures that floor: on every conformation of every
benchmark file it computes ANI-2x and GFN2-xTB energies and forces (``grappa_like.labelers``)
and scores them against the ``dft`` label as the evaluation scores a model
(``grappa_like.evaluation``): force-component RMSE (kcal/mol/Å) and RMSE of energies mean-centred
per molecule (kcal/mol), per group (molecule) and pooled per set like ``benchmarks.md``'s summary
(accumulated per subset, then ``pooled``). ``acac_dihedral`` has no DFT forces: energies only.
ANI-2x rejects charged molecules (charged peptides, the SPICE ammonium): "n/a" there, and its
set row pools only the groups it covers (count given). Test-only sets: report, never tune.

Usage: taskset -c 1 env OMP_NUM_THREADS=1 python scripts/teacher_vs_benchmarks.py \
           --benchmarks ../shared/benchmarks [--ani-dir ../shared/teachers/ani-2x] [--output FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from grappa_like.benchmarks import BENCHMARK_SETS
from grappa_like.data import read_records
from grappa_like.evaluation import ErrorAccumulator, pooled
from grappa_like.labelers import ANI2xLabeler, GFN2Labeler, LabelerRejectedError
from grappa_like.units import ANGSTROM_TO_NM, KCAL_TO_KJ
from harness import publish

METHODS = ("ANI-2x", "GFN2")


def predict(labeler, record):
    """(energies kJ/mol, forces kJ/mol/nm) of ``labeler`` on every conformation of ``record``."""
    mol = record.molecule.rdkit_mol
    labeler.check(record.molecule.atomic_numbers, record.molecule.total_charge,
                  [atom.GetFormalCharge() for atom in mol.GetAtoms()],
                  [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()])
    energies, forces, failures = labeler.energies_and_forces(
        record.molecule.atomic_numbers, record.positions / ANGSTROM_TO_NM, record.molecule.total_charge)
    if failures:
        raise RuntimeError(f"{record.mol_id}: {labeler.label} failed on rows {sorted(failures)}")
    return energies * KCAL_TO_KJ, forces * (KCAL_TO_KJ / ANGSTROM_TO_NM)


def score_set(path: str, labelers: dict) -> list[str]:
    """Table rows of one benchmark file: the pooled set row, then one row per group."""
    accumulators: dict = {}  # subset -> method -> ErrorAccumulator
    rows, conformations = [], 0
    set_name = os.path.basename(path)
    for record in read_records(path, label_preference=("dft",)):
        start = time.perf_counter()
        cells = {}
        for method, labeler in labelers.items():
            try:
                energies, forces = predict(labeler, record)
            except LabelerRejectedError as error:
                print(f"  {method} rejects {record.mol_id}: {error}", file=sys.stderr)
                cells[method] = ("n/a", "n/a")
                continue
            accumulator = accumulators.setdefault(record.subset, {}).setdefault(method, ErrorAccumulator())
            accumulator.add(record.mol_id, record, energies, forces)
            entry = accumulator.per_molecule[-1]
            cells[method] = (fmt(entry["force_rmse"]), fmt(entry["energy_rmse"]))
        conformations += len(record.energies)
        rows.append(f"| | {record.mol_id} | {len(record.energies)} | "
                    + " | ".join(" | ".join(cells[m]) for m in METHODS) + " |")
        print(f"{set_name} {record.mol_id}: {len(record.energies)} conformations, "
              + ", ".join(f"{m} F/E {'/'.join(cells[m])}" for m in METHODS)
              + f" ({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    groups = {subset: {m: a.summary() for m, a in methods.items()} for subset, methods in accumulators.items()}
    set_cells = []
    for method in METHODS:
        summary = pooled(groups, method)
        if not summary["conformations"]:
            set_cells += ["n/a", "n/a"]
            continue
        partial = f" ({summary['conformations']} conf.)" if summary["conformations"] != conformations else ""
        set_cells += [fmt(summary["force_rmse"]) + partial, fmt(summary["energy_rmse"]) + partial]
    return [f"| **{set_name}** | all | {conformations} | " + " | ".join(set_cells) + " |"] + rows


def fmt(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benchmarks", required=True, help="folder of the benchmark HDF5 files")
    parser.add_argument("--ani-dir", default="../shared/teachers/ani-2x", help="NeuroChem ANI-2x files")
    parser.add_argument("--output", help="also write the Markdown table here")
    args = parser.parse_args()
    labelers = {"ANI-2x": ANI2xLabeler(args.ani_dir), "GFN2": GFN2Labeler()}
    start = time.perf_counter()
    lines = ["Teachers vs DFT on the benchmark sets: force-component RMSE F (kcal/mol/Å) and RMSE of energies "
             "mean-centred per molecule E (kcal/mol) against the `dft` label. Set rows pool the groups the "
             "method covers (conformations in brackets where fewer than all); `–`: no DFT forces; `n/a`: ANI-2x "
             "rejects the molecule (charged).",
             "",
             "| set | group | conformations | ANI-2x F | ANI-2x E | GFN2 F | GFN2 E |",
             "|---|---|---|---|---|---|---|"]
    for file_name in BENCHMARK_SETS:
        lines += score_set(os.path.join(args.benchmarks, file_name), labelers)
    lines += ["", f"{labelers['ANI-2x'].level_of_theory()}; {labelers['GFN2'].level_of_theory()}. "
              f"Wall time {time.perf_counter() - start:.0f} s."]
    publish(lines, args.output)


if __name__ == "__main__":
    main()
