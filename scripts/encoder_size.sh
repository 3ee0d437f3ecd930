#!/usr/bin/env bash
# Does a wider or deeper encoder pay? (issue 17, item 4) Three networks on the same data, split,
# seed and schedule (25 epochs, v2's labels), one thread each, one after the other:
# 128 wide x 4 layers (the shipped config), 192 wide (heads 192) x 4, 128 wide x 6.
# Usage, from the repository root: bash scripts/encoder_size.sh OUTDIR [TRAIN_FILE]
# (about 45 min of one core on train-v0; writes OUTDIR/<name>.npz, <name>.log, encoder_size.summary)
set -u
out="${1:?usage: encoder_size.sh OUTDIR [TRAIN_FILE]}"
data="$(realpath "${2:-../shared/data/train-v0.h5}")"
mkdir -p "$out"
export OMP_NUM_THREADS=1
for spec in 'w128l4:{}' 'w192l4:{"width": 192, "head_hidden": 192}' 'w128l6:{"n_layers": 6}'; do
  name="${spec%%:*}"; config="${spec#*:}"
  start=$(date +%s)
  nice -n 10 grappa-like train --data "$data" --out "$out/$name.npz" --epochs 25 --patience 25 \
      --threads 1 --labels ani2x,gfn2 --model-config "$config" > "$out/$name.log" 2>&1
  echo "$name exit $? in $(( $(date +%s) - start )) s" >> "$out/encoder_size.summary"
done
