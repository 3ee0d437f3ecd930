#!/usr/bin/env bash
# Build the v1 additions to the training data (docs/dataset.md, "The v1 additions") into OUTDIR.
# Resumable: run it again after an interruption. About 1 h on 2 cores.
#   bash data/train-v1/build.sh OUTDIR [WORKERS]
set -euo pipefail
out="${1:?usage: build.sh OUTDIR [WORKERS]}"
workers="${2:-2}"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export OMP_NUM_THREADS=1
mkdir -p "$out"
# exit code 1 = some molecules failed (listed in <file>.failures.tsv): the rest is built, go on
build() { grappa-like build-dataset "$@" || [ $? -eq 1 ]; }
ani=(--labeler ani2x --ani-dir "$repo/../shared/teachers/ani-2x")
peptides="train-v0 capped residues and 40 random dipeptides (seed 20261125), with torsion drives"
druglike="MoleculeNet BACE/BBBP/SIDER/Tox21 via HICAI-ZJU/KANO 766b478f, scripts/select_training_molecules.py"
common=(--subset peptide_drives --source "$peptides" --confs 16 --max-torsions 4 --torsion-points 12 --workers "$workers")
build "$here/peptides-ani2x.smi" -o "$out/v1-peptides-ani2x.h5" "${ani[@]}" "${common[@]}"
build "$here/peptides-gfn2.smi" -o "$out/v1-peptides-gfn2.h5" --labeler gfn2 "${common[@]}"
build "$here/druglike-ani2x.smi" -o "$out/v1-druglike-ani2x.h5" "${ani[@]}" --subset druglike \
    --source "$druglike" --confs 16 --max-torsions 2 --torsion-points 12 --workers "$workers"
build "$here/druglike-gfn2.smi" -o "$out/v1-druglike-gfn2.h5" --labeler gfn2 --subset druglike \
    --source "$druglike" --confs 12 --max-torsions 2 --torsion-points 8 --workers "$workers"
