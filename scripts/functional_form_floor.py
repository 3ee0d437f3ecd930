"""How low can the MM functional form go? Fit each validation molecule's bonded terms to its own QM data.

For the validation molecules of a model (its ``validation_molecules``) the charges and LJ
parameters stay the model's, and the bonded parameters of each molecule are fitted to that
molecule's own conformations. With energies mean-centred per molecule, the bonded energy is
linear in (k, k·r0) of each bond, (k, k·θ0) of each angle and the signed amplitude of each torsion
periodicity, so the training loss (energy MSE + force MSE, kcal/mol and kcal/mol/Å, weights 1:1)
is a linear least-squares problem, solved exactly with a scale-free ridge (--ridge) towards the
model's own parameters (without it the redundant torsion columns fit noise).

Two scores per variant: in-sample (fitted and scored on all conformations of the molecule: a
floor that sees the answers) and held-out (fitted on the even-numbered conformations, scored on
the odd-numbered ones: what the best per-molecule parameters of this form do on conformations
they were not fitted to). Bond and angle force constants ≤ 0 are counted. If even these fits are
not much better than the model, the functional form (not the network or the data) is the limit.

Variants (each adds columns to the one before, except the first):
  bonded        bonds, angles, propers (periodicities 1..4), impropers (1..2): the shipped form
  +6n           propers with periodicities 1..6
  +UB           plus a Urey-Bradley term k/2 (r13 - r0)^2 on every angle (as in CHARMM)
  bonded+q      the shipped form with the partial charges free too (total charge kept): the
                Coulomb energy is quadratic in the charges, so they are fitted by Gauss-Newton
                (4 linearisations: columns ∂E/∂q_i, centred so that Σδq = 0, ridge towards the
                model's charges) and the fitted parameter set is scored exactly

Pooled force-component RMSE and mean-centred energy RMSE over all conformations, side by side
with the model. Usage (from the repository root):
  OMP_NUM_THREADS=1 python scripts/functional_form_floor.py --model runs/v2.pt --data FILE [FILE ...]
      [--max-molecules N] [--ridge 0.01] [--output FILE]
"""

from __future__ import annotations

import argparse
import math
import random

import torch
from torch.func import jacfwd, vmap

from grappa_like import model_file
from grappa_like.api import Model
from grappa_like.data import read_data
from grappa_like.energy import COULOMB_CONSTANT, bonded_energy, dihedral_angle, energy_and_forces, nonbonded_energy
from grappa_like.training import lj_tensors, prepare
from grappa_like.units import KJ_PER_NM_TO_KCAL_PER_ANGSTROM, KJ_TO_KCAL
from harness import publish

VARIANTS = ("model", "bonded", "+6n", "+UB", "bonded+q")


def _distances(x, index):
    return torch.linalg.vector_norm(x[index[:, 0]] - x[index[:, 1]], dim=-1)


def _angles(x, index):
    v1, v2 = x[index[:, 0]] - x[index[:, 1]], x[index[:, 2]] - x[index[:, 1]]
    return torch.atan2(torch.linalg.vector_norm(torch.cross(v1, v2, dim=-1), dim=-1), (v1 * v2).sum(-1))


def _cosines(x, quadruples, periodicities: int):
    if quadruples.shape[0] == 0:
        return x.new_zeros(0)
    phi = dihedral_angle(x[None], quadruples)[0]
    return torch.cos(phi[:, None] * torch.arange(1, periodicities + 1, dtype=x.dtype)).flatten()


def coulomb_energy(x, coulomb, charges):
    """Coulomb energy (kJ/mol) of one conformation for ``charges`` over the pairs of ``coulomb``."""
    pairs, scale = coulomb
    return (COULOMB_CONSTANT * scale * charges[pairs[:, 0]] * charges[pairs[:, 1]]
            / _distances(x, pairs)).sum()


def features(x, indices: dict, variant: str, coulomb=None, charges=None):
    """Energy features of one conformation (n_atoms, 3) nm whose linear combination is the bonded energy.

    Bonds and angles give (q²/2, -q) for q = r or θ (weights k and k·q0); torsions cos(nφ) (weight κ_n).
    With ``bonded+q``, also ∂E_Coulomb/∂q_i at ``charges``, centred over the atoms (weights: δq).
    """
    r, theta = _distances(x, indices["bonds"]), _angles(x, indices["angles"])
    columns = [r * r / 2, -r, theta * theta / 2, -theta,
               _cosines(x, indices["propers"], 6 if variant in ("+6n", "+UB") else 4),
               _cosines(x, indices["impropers"], 2)]
    if variant == "+UB":
        r13 = _distances(x, indices["angles"][:, [0, 2]])
        columns += [r13 * r13 / 2, -r13]
    if variant == "bonded+q":
        derivative = torch.func.grad(lambda q: coulomb_energy(x, coulomb, q))(charges)
        columns.append(derivative - derivative.mean())
    return torch.cat(columns)


def feature_matrices(example, variant: str, coulomb=None, charges=None):
    """Energy features (M, P) and force features (M, 3N, P) of all conformations, kcal units."""
    def one(x):
        return features(x, example.indices, variant, coulomb, charges)
    energy_features = vmap(one)(example.positions) * KJ_TO_KCAL
    # a few conformations at a time: the Jacobian of the charge columns is large for big molecules
    force_features = -torch.cat([vmap(jacfwd(one))(chunk) for chunk in example.positions.split(4)])
    return energy_features, (force_features * KJ_PER_NM_TO_KCAL_PER_ANGSTROM).flatten(2, 3).transpose(1, 2)


def squared_errors(energy_prediction, force_prediction, energy_target, force_target, rows):
    """(energy SSE with energies centred over ``rows``, force SSE) on conformations ``rows``."""
    energy_error = energy_prediction[rows] - energy_target[rows]
    energy_error = energy_error - energy_error.mean()
    force_error = force_prediction[rows] - force_target[rows]
    return float(energy_error.detach().pow(2).sum()), float(force_error.detach().pow(2).sum())


def fit_weights(energy_features, force_features, energy_target, force_target, rows, prior, ridge: float):
    """Weights of the features fitted on conformations ``rows`` (energy and force MSE, 1:1), with a
    scale-free ridge pulling each weight towards ``prior`` (the model's own parameters):
    (AᵀA + ridge·diag(AᵀA)) w = Aᵀb + ridge·diag(AᵀA) prior. Without it, the redundant torsion
    columns make the plain least-squares solution fit the noise of the fitted conformations."""
    energy_rows = energy_features[rows] - energy_features[rows].mean(0)
    energy_values = energy_target[rows] - energy_target[rows].mean()
    force_rows = force_features[rows].reshape(-1, force_features.shape[-1])
    energy_scale, force_scale = 1 / math.sqrt(energy_values.numel()), 1 / math.sqrt(force_rows.shape[0])
    design = torch.cat([energy_rows * energy_scale, force_rows * force_scale])
    target = torch.cat([energy_values * energy_scale, force_target[rows].reshape(-1) * force_scale])
    gram = design.T @ design
    penalty = ridge * gram.diagonal().clamp_min(1e-12)
    return torch.linalg.solve(gram + torch.diag(penalty), design.T @ target + penalty * prior)


def prior_weights(parameters: dict, variant: str):
    """The model's parameters as feature weights (the same order as :func:`features`; kJ/mol units)."""
    proper = parameters["proper_k"]
    if variant in ("+6n", "+UB"):
        proper = torch.cat([proper, proper.new_zeros(proper.shape[0], 2)], dim=1)
    columns = [parameters["bond_k"], parameters["bond_k"] * parameters["bond_r0"], parameters["angle_k"],
               parameters["angle_k"] * parameters["angle_theta0"], proper.flatten(), parameters["improper_k"].flatten()]
    if variant == "+UB":
        columns.append(proper.new_zeros(2 * len(parameters["angle_k"])))
    if variant == "bonded+q":
        columns.append(proper.new_zeros(len(parameters["charges"])))
    return torch.cat(columns)


def coulomb_change(example, coulomb, start, end):
    """Coulomb energies and forces (kcal units) with charges ``end`` minus those with ``start``."""
    def energy(x):
        return vmap(lambda one: coulomb_energy(one, coulomb, end) - coulomb_energy(one, coulomb, start))(x)
    energies, forces = energy_and_forces(example.positions, energy)
    return energies.detach() * KJ_TO_KCAL, (forces * KJ_PER_NM_TO_KCAL_PER_ANGSTROM).flatten(1)


GAUSS_NEWTON_STEPS = 4


def floor_fit(example, energy_target, force_target, variant: str, parameters: dict, ridge: float) -> dict:
    """Bonded least-squares fits of one molecule: squared errors in-sample (fit and scored on all
    conformations) and held-out (fit on the even-numbered conformations, scored on the odd ones),
    and the count of bond/angle force constants ≤ 0 in the in-sample fit."""
    pairs, coulomb_scale, _ = example.pairs
    coulomb = (pairs, coulomb_scale.double())
    energy_features, force_features = feature_matrices(example, variant, coulomb, parameters["charges"])
    prior = prior_weights(parameters, variant)
    model_charges = parameters["charges"]
    n_atoms = len(model_charges)
    every = torch.arange(len(energy_target))
    even, odd = every[0::2], every[1::2]
    result = {}
    for name, fit_rows, score_rows in (("in_sample", every, every), ("held_out", even, odd)):
        if variant != "bonded+q":
            weights = fit_weights(energy_features, force_features, energy_target, force_target, fit_rows, prior, ridge)
            energy_prediction, force_prediction = energy_features @ weights, force_features @ weights
        else:
            charges = model_charges
            for _ in range(GAUSS_NEWTON_STEPS):  # linearise the Coulomb energy at the current charges
                energy_features, force_features = feature_matrices(example, variant, coulomb, charges)
                change = coulomb_change(example, coulomb, model_charges, charges)
                prior[-n_atoms:] = model_charges - charges
                weights = fit_weights(energy_features, force_features, energy_target - change[0],
                                      force_target - change[1], fit_rows, prior, ridge)
                charges = charges + weights[-n_atoms:] - weights[-n_atoms:].mean()
            bonded_weights = weights[:-n_atoms]
            change = coulomb_change(example, coulomb, model_charges, charges)
            energy_prediction = energy_features[..., :-n_atoms] @ bonded_weights + change[0]
            force_prediction = force_features[..., :-n_atoms] @ bonded_weights + change[1]
        result[name] = squared_errors(energy_prediction, force_prediction, energy_target, force_target, score_rows)
        if name == "in_sample":
            n_bonds, n_angles = len(example.indices["bonds"]), len(example.indices["angles"])
            constants = torch.cat([weights[:n_bonds], weights[2 * n_bonds:2 * n_bonds + n_angles]])
            result["negative"], result["constants"] = int((constants <= 0).sum()), len(constants)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--max-molecules", type=int, default=None, help="a seeded sample of the validation molecules")
    parser.add_argument("--ridge", type=float, default=1e-3,
                        help="relative ridge towards the model's parameters (default 1e-3)")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    model = Model.from_payload(model_file.load(args.model), args.model)
    wanted = set(model.metadata["validation_molecules"])
    records = [record for record, _ in read_data(args.data) if record.mol_id in wanted and record.forces is not None]
    if args.max_molecules:
        records = sorted(random.Random(0).sample(records, min(args.max_molecules, len(records))), key=lambda r: r.mol_id)
    sigma_table, epsilon_table = (t.double() for t in lj_tensors(model.lj_table))
    totals = {variant: {"in_sample": [0.0, 0.0], "held_out": [0.0, 0.0], "negative": 0, "constants": 0}
              for variant in VARIANTS}
    counts = {"in_sample": [0, 0], "held_out": [0, 0]}
    for number, record in enumerate(records):
        example = prepare(record, model.lj_table)
        positions = example.positions = example.positions.double()
        with torch.no_grad():
            raw = model.network(example.graph)
        lj_class = raw["lj_logits"].argmax(-1)
        pairs, coulomb_scale, lj_scale = example.pairs
        nonbonded = [tensor.detach() for tensor in energy_and_forces(positions, lambda x: nonbonded_energy(
            x, pairs, coulomb_scale.double(), lj_scale.double(), raw["charges"].double(),
            sigma_table[lj_class], epsilon_table[lj_class]))]
        shipped = {key: raw[key].double() for key in ("bond_k", "bond_r0", "angle_k", "angle_theta0",
                                                       "proper_k", "improper_k", "charges")}
        bonded = [tensor.detach() for tensor in energy_and_forces(
            positions, lambda x: bonded_energy(x, example.indices, shipped))]
        # targets of the bonded terms: QM minus the model's nonbonded part, kcal units
        energy_target = (example.energies.double() - nonbonded[0]) * KJ_TO_KCAL
        force_target = ((example.forces.double() - nonbonded[1]) * KJ_PER_NM_TO_KCAL_PER_ANGSTROM).flatten(1)
        model_energy, model_force = bonded[0] * KJ_TO_KCAL, (bonded[1] * KJ_PER_NM_TO_KCAL_PER_ANGSTROM).flatten(1)
        every = torch.arange(len(energy_target))
        for name, rows in (("in_sample", every), ("held_out", every[1::2])):
            errors = squared_errors(model_energy, model_force, energy_target, force_target, rows)
            for index in range(2):
                totals["model"][name][index] += errors[index]
            counts[name][0] += len(rows)
            counts[name][1] += len(rows) * force_target.shape[1]
        for variant in VARIANTS[1:]:
            result = floor_fit(example, energy_target, force_target, variant, shipped, args.ridge)
            for name in ("in_sample", "held_out"):
                for index in range(2):
                    totals[variant][name][index] += result[name][index]
            totals[variant]["negative"] += result["negative"]
            totals[variant]["constants"] += result["constants"]
        print(f"{number + 1}/{len(records)} {record.mol_id}: pooled force RMSE so far (in-sample / held-out) " + ", ".join(
            f"{v} {rmse(totals[v], counts, 'in_sample', 1):.2f}/{rmse(totals[v], counts, 'held_out', 1):.2f}"
            for v in VARIANTS), flush=True)
    model_force = {name: rmse(totals["model"], counts, name, 1) for name in ("in_sample", "held_out")}
    lines = [f"{len(records)} validation molecules of {args.model}, {counts['in_sample'][0]} conformations; "
             f"least-squares fits of the bonded terms per molecule (charges and LJ the model's; ridge {args.ridge} "
             "towards the model's parameters). In-sample: "
             "fitted and scored on all conformations of the molecule; held-out: fitted on the even-numbered, "
             f"scored on the odd-numbered ({counts['held_out'][0]}) conformations", "",
             "| parameters | force RMSE in-sample | energy RMSE in-sample | force RMSE held-out | energy RMSE held-out "
             "| held-out force vs model | bond/angle k ≤ 0 (in-sample) |", "|---|---|---|---|---|---|---|"]
    for variant in VARIANTS:
        label = "model" if variant == "model" else f"per-molecule fit: {variant}"
        negative = "" if variant == "model" else f"{totals[variant]['negative']} of {totals[variant]['constants']}"
        held_out_force = rmse(totals[variant], counts, "held_out", 1)
        lines.append(f"| {label} | {rmse(totals[variant], counts, 'in_sample', 1):.2f} | "
                     f"{rmse(totals[variant], counts, 'in_sample', 0):.2f} | {held_out_force:.2f} | "
                     f"{rmse(totals[variant], counts, 'held_out', 0):.2f} | "
                     f"{held_out_force / model_force['held_out']:.2f} | {negative} |")
    lines.append("")
    lines.append("Force RMSE in kcal/mol/Å (force components), energy RMSE in kcal/mol (mean-centred per molecule).")
    publish(lines, args.output)


def rmse(total: dict, counts: dict, name: str, part: int) -> float:
    """Pooled RMSE of ``part`` (0 energy, 1 force) of one variant's totals over the ``name`` rows."""
    return math.sqrt(total[name][part] / counts[name][part])


if __name__ == "__main__":
    main()
