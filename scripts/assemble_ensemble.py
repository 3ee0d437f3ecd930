"""Assemble a model file with an ensemble: the main network plus extra members, and the OOD threshold.

The main network's state dict is copied unchanged (float32: its parameters stay bit-identical);
each member's state dict is stored in float16. Members must share the main network's config, LJ
type table and validation split (so the validation molecules are unseen by every network). The
out-of-domain threshold is the given percentile (default 95th) of the scores of the model's own
validation molecules, read from the training data files (never from ../shared/benchmarks).

Usage: OMP_NUM_THREADS=1 python scripts/assemble_ensemble.py models/grappa-like-v1.pt \
           runs/lc_0.5.pt runs/lc_0.25.pt -o runs/grappa-like-v1-ensemble.pt
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time

import numpy as np

from grappa_like import model_file, ood
from grappa_like.api import Model
from grappa_like.data import DEFAULT_LABEL_PREFERENCE, read_records_by_id

SHARED_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
_STORED_KEYS = ("config", "state_dict", "lj_types", "validation_molecules", "training_data", "metrics")


def file_sha256(path: str) -> str:
    """sha256 of a file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def check_compatible(main: dict, member: dict, member_path: str) -> None:
    """Raise SystemExit naming ``member_path`` if it does not fit next to the main network."""
    if "ensemble" in member:
        sys.exit(f"{member_path}: already has an ensemble; give plain model files as members")
    for key, what in (("config", "network config"), ("lj_types", "LJ type table")):
        if member[key] != main[key]:
            sys.exit(f"{member_path}: its {what} differs from the main network's")
    if set(member["validation_molecules"]) != set(main["validation_molecules"]):
        sys.exit(f"{member_path}: its validation molecules differ from the main network's; the threshold "
                 "needs molecules that no network trained on")


def member_record(path: str, payload: dict) -> dict:
    """Where a member came from: file name, sha256, training fraction/seed, validation force RMSE."""
    config = payload["training_data"].get("training_config", {})
    return {
        "file": os.path.basename(path),
        "sha256": file_sha256(path),
        "training_files": payload["training_data"].get("files"),
        "train_fraction": config.get("train_fraction", 1.0),
        "seed": config.get("seed"),
        "validation_force_rmse_kcal_per_mol_angstrom":
            payload["metrics"].get("validation_force_rmse_kcal_per_mol_angstrom"),
    }


def validation_molecules(model: Model, data_paths: list[str]):
    """The Molecules of the model's validation split found in ``data_paths`` (grappa_like-qm-v1 files)."""
    preference = tuple(model.metadata["training_data"].get("label_preference", DEFAULT_LABEL_PREFERENCE))
    records = read_records_by_id(data_paths, model.metadata["validation_molecules"], preference)
    return [record.molecule for record in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("main", help="model file of the main network (its outputs stay unchanged)")
    parser.add_argument("members", nargs="+", help="model files of the ensemble members (same config)")
    parser.add_argument("-o", "--output", required=True, help="model file to write")
    parser.add_argument("--data", action="append", default=None,
                        help="training data file holding the validation molecules (repeatable; default: the main "
                             "model's training files in ../shared/data)")
    parser.add_argument("--percentile", type=float, default=95.0,
                        help="threshold = this percentile of the validation molecules' scores (default 95)")
    parser.add_argument("--conformers", type=int, default=ood.DEFAULT_CONFORMERS,
                        help=f"ETKDG conformers per molecule for the score (default {ood.DEFAULT_CONFORMERS})")
    parser.add_argument("--seed", type=int, default=ood.DEFAULT_SEED, help="ETKDG seed of the score")
    args = parser.parse_args()
    if os.path.abspath(args.output) in {os.path.abspath(p) for p in [args.main] + args.members}:
        sys.exit("the output must be a new file, not one of the inputs")

    main_payload = model_file.load(args.main)
    if "ensemble" in main_payload:
        sys.exit(f"{args.main}: already has an ensemble; give the plain main network")
    members = []
    for path in args.members:
        payload = model_file.load(path)
        check_compatible(main_payload, payload, path)
        members.append(payload)
    data_paths = args.data or [os.path.join(SHARED_DATA, name) for name in main_payload["training_data"]["files"]]

    payload = {key: main_payload[key] for key in _STORED_KEYS}
    payload["ensemble"] = [member["state_dict"] for member in members]
    ensemble_metadata = {
        "main": member_record(args.main, main_payload),
        "members": [member_record(path, member) for path, member in zip(args.members, members)],
        "storage": "members in float16; main network float32 (unchanged)",
        "score": {"conformers": args.conformers, "seed": args.seed, "unit": "kcal/mol/Å",
                  "definition": "RMS over ETKDGv3 conformers, atoms and components of the standard deviation "
                                "of the MM forces across the main network and the members"},
    }
    with tempfile.TemporaryDirectory() as folder:  # score with the members exactly as stored (float16)
        draft = os.path.join(folder, "draft.npz")
        model_file.save(draft, dict(payload, ensemble_metadata=ensemble_metadata))
        model = Model.from_payload(model_file.load(draft), draft)
    molecules = validation_molecules(model, data_paths)
    start = time.perf_counter()
    scores = []
    for molecule in molecules:
        try:
            scores.append(ood.ensemble_force_spread(molecule, model))
        except ValueError as error:
            print(f"no score for {molecule.name}: {error}", file=sys.stderr)
    seconds = time.perf_counter() - start
    if not scores:
        sys.exit("no validation molecule could be scored; check --data")
    threshold = float(np.percentile(scores, args.percentile))
    ensemble_metadata.update({
        "ood_threshold": threshold,
        "ood_threshold_rule": f"{args.percentile:g}th percentile of the scores of the model's validation molecules",
        "validation_scores": {"data": [os.path.basename(p) for p in data_paths], "molecules": len(scores),
                              "median": float(np.median(scores)), "max": float(np.max(scores))},
    })
    model_file.save(args.output, dict(payload, ensemble_metadata=ensemble_metadata))
    print(f"{args.output}: main + {len(members)} members, {os.path.getsize(args.output) / 1e6:.1f} MB; "
          f"OOD threshold {threshold:.3f} kcal/mol/Å ({args.percentile:g}th percentile of {len(scores)} validation "
          f"molecules, median {np.median(scores):.3f}); scoring took {seconds / len(scores) * 1000:.0f} ms/molecule")


if __name__ == "__main__":
    main()
