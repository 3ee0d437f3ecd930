"""Does averaging the parameters of several networks help? Validation error of each network and of their mean.

The networks must share a validation split (the first one's ``validation_molecules`` are used).
For each validation molecule every network predicts its parameters; the "mean" row uses the
element-wise mean of all predicted parameters (force constants, equilibrium values, torsion
amplitudes, charges) and the LJ class of the mean LJ logits. Pooled force-component RMSE
(kcal/mol/Å) and mean-centred energy RMSE (kcal/mol), as in training.

Usage: OMP_NUM_THREADS=1 python scripts/ensemble_average.py MODEL MODEL [MODEL ...] --data FILE [FILE ...]
"""

from __future__ import annotations

import argparse
import math

import torch

from grappa_like import model_file
from grappa_like.api import Model
from grappa_like.data import read_data
from grappa_like.model import torch_network
from grappa_like.training import lj_tensors, molecule_predictions, prepare
from grappa_like.units import KJ_PER_NM_TO_KCAL_PER_ANGSTROM, KJ_TO_KCAL
from harness import publish


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    models = [Model.from_payload(model_file.load(path), path) for path in args.models]
    networks = [torch_network(model) for model in models]
    wanted = set(models[0].metadata["validation_molecules"])
    records = [record for record, _ in read_data(args.data) if record.mol_id in wanted and record.forces is not None]
    tables = lj_tensors(models[0].lj_table)
    names = [*args.models, "mean of all"]
    sums = {name: [0.0, 0, 0.0, 0] for name in names}
    for record in records:
        example = prepare(record, models[0].lj_table)
        with torch.no_grad():
            predicted = [network(example.graph) for network in networks]
        mean = {key: torch.stack([p[key].double() for p in predicted]).mean(0).float() for key in predicted[0]}
        for name, parameters in zip(names, [*predicted, mean]):
            energies, forces = molecule_predictions(example, parameters, tables, create_graph=False)
            energies = energies - energies.mean()
            total = sums[name]
            total[0] += float(((energies - example.energies) * KJ_TO_KCAL).pow(2).sum())
            total[1] += energies.numel()
            total[2] += float(((forces - example.forces) * KJ_PER_NM_TO_KCAL_PER_ANGSTROM).pow(2).sum())
            total[3] += forces.numel()
    lines = [f"{len(records)} validation molecules of {args.models[0]}", "",
             "| parameters from | force RMSE (kcal/mol/Å) | energy RMSE (kcal/mol) |", "|---|---|---|"]
    for name in names:
        energy_sq, energy_n, force_sq, force_n = sums[name]
        lines.append(f"| {name} | {math.sqrt(force_sq / force_n):.3f} | {math.sqrt(energy_sq / energy_n):.3f} |")
    publish(lines, args.output)


if __name__ == "__main__":
    main()
