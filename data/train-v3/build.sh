#!/usr/bin/env bash
# Build the v3 additions to the training data (issue 17; docs/dataset.md, "The v3 additions") into OUTDIR,
# one HDF5 file per .smi chunk (250 molecules), chunk 00 of every list first, then chunk 01, ...
# Resumable: run the same command again after an interruption (finished molecules are kept in
# OUTDIR/<file>.h5.parts/ and skipped); every finished chunk is a usable training file.
#   bash data/train-v3/build.sh OUTDIR [WORKERS] [CHUNKS]     CHUNKS: e.g. "00 01" (default: all)
#   STOP_AFTER_MINUTES=M bash data/train-v3/build.sh ...      start no molecule after M minutes; every list's file
#     is then written from its finished molecules (exit code 3); the same command goes on later.
#   SEED_DIR=DIR bash data/train-v3/build.sh ...   DIR holds whole or partial v3-*.h5 outputs of this build
#     made elsewhere (another machine, a Dask run): they seed the lists (--seed-from), their molecules are
#     not built again. A partial build is handed on by stopping it, then
#     STOP_AFTER_MINUTES=0 bash data/train-v3/build.sh OUTDIR 1 "00"   (writes every list's file, builds nothing)
#     and giving OUTDIR/v3-*.h5 to the next machine as its SEED_DIR (or the whole OUTDIR, which resumes as is).
#
# Recipe per molecule (see grappa-like build-dataset --help):
#   ANI-2x lists (*-ani2x-*.smi): labels ani2x AND gfn2 on the same rows (training picks per subset,
#     e.g. --labels hbond=gfn2/ani2x,...); 16 MMFF minima + MD snapshots at 300/500/800 K, 4 unminimised
#     ETKDG conformers, 2 rotatable + 2 conjugated (amide/ester/aryl-aryl/...) torsion drives x 12 points,
#     ANI-2x minimum + 8 normal-mode samples at 300/450/600 K: about 60-80 rows.
#   GFN2 lists (*-gfn2-*.smi; charged, zwitterions, P/Br/I): gfn2; 12 minima + MD at 300/500/800 K,
#     4 ETKDG, 2 rotatable + 1 conjugated drives x 8 points (no normal modes: charged molecules get none,
#     and 6N GFN2 gradients for the neutral P/Br/I ones cost more than the rest of their build): about 40 rows.
#   AM1-BCC charges + GAFF2 types for all (antechamber, AM1 single point at the MMFF minimum).
#
# Cost, measured on 3 + 3 molecules of these lists (one core, a shared 2-core machine; /work/v3-timing):
#   ANI-2x lists: 23 s CPU per molecule (22-45 atoms; ani2x alone 14 s, gfn2 adds 8 s); peak memory 2 GB
#     (the normal-mode Hessian in one batch; batches of 32 since 0eb08dc use less); wall time about 2x CPU.
#   GFN2 lists: 1.6 s wall (26 atoms, 32 rows) and 30 s wall (71 atoms, 36 rows) on the shared machine; about
#     15 s per molecule on average. (A third, a bridged alkaloid cation, hung in ETKDG on an impossible
#     stereoisomer for > 6 min: that is why the selection now writes a stereoisomer that embeds.)
#   Whole selection (2,101 ANI-2x + 1,485 GFN2 molecules): about 13 h + 6 h = 20 h of one core, i.e. about
#   1-2 days with one worker at nice 15 on the shared machine; one chunk of 250 ANI-2x molecules about
#   1.6 h of one core, one GFN2 chunk about 1 h.
set -euo pipefail
out="${1:?usage: build.sh OUTDIR [WORKERS] [CHUNKS]}"
workers="${2:-1}"
chunks="${3:-$(ls "$(dirname "$0")"/*.smi | sed -E 's/.*-([0-9]+)\.smi$/\1/' | sort -u | tr '\n' ' ')}"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export OMP_NUM_THREADS=1
mkdir -p "$out"
# exit code 1 = some molecules failed (listed in <file>.failures.tsv): the rest is built, go on;
# 3 = stopped by the time limit: the file holds the finished molecules, the next lists only get written
build() {
    local rc=0
    grappa-like build-dataset "$@" || rc=$?
    case "$rc" in 0|1) ;; 3) stopped=1 ;; *) return "$rc" ;; esac
}
source_text="issue 17 v3 selection (scripts/select_training_molecules_v3.py): MoleculeNet HIV/Lipophilicity/BACE/BBBP/ClinTox/SIDER/ESOL/FreeSolv/Tox21 via HICAI-ZJU/KANO 766b478f, plus enumerated family members"
common=(--source "$source_text" --md-temperatures 300,500,800 --etkdg-confs 4 --max-torsions 2
        --molecule-timeout 1200 --workers "$workers" --no-progress)
ani=(--labeler ani2x,gfn2 --ani-dir "$repo/../shared/teachers/ani-2x" --confs 16 --torsion-points 12
     --conjugated-torsions 2 --normal-mode-confs 8)
gfn2=(--labeler gfn2 --confs 12 --torsion-points 8 --conjugated-torsions 1)
if [ -n "${STOP_AFTER_MINUTES:-}" ]; then end=$(( $(date +%s) + ${STOP_AFTER_MINUTES%.*} * 60 )); fi
stopped=0
for chunk in $chunks; do
    for list in "$here"/druglike-ani2x-"$chunk".smi "$here"/hbond-ani2x-"$chunk".smi \
                "$here"/druglike-gfn2-"$chunk".smi "$here"/hbond-gfn2-"$chunk".smi; do
        [ -e "$list" ] || continue
        stem="$(basename "$list" .smi)"
        case "$stem" in
            *-ani2x-*) recipe=("${ani[@]}") ;;
            *) recipe=("${gfn2[@]}") ;;
        esac
        options=()
        if [ -n "${SEED_DIR:-}" ] && [ -e "$SEED_DIR/v3-$stem.h5" ]; then options+=(--seed-from "$SEED_DIR/v3-$stem.h5"); fi
        if [ -n "${STOP_AFTER_MINUTES:-}" ]; then
            left=$(( end - $(date +%s) )); if [ "$left" -lt 0 ]; then left=0; fi
            options+=(--stop-after-minutes "$(awk "BEGIN {print $left / 60}")")
        fi
        echo "$(date -Is) building $stem" >&2
        build "$list" -o "$out/v3-$stem.h5" --subset "${stem%%-*}" "${common[@]}" "${recipe[@]}" "${options[@]}"
    done
done
if [ "$stopped" -eq 1 ]; then echo "$(date -Is) stopped (STOP_AFTER_MINUTES); run again to go on" >&2; exit 3; fi
echo "$(date -Is) done" >&2
