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
  bonded+q+LJ   as bonded+q, and the LJ σ and ε free too, one log-scale factor each per LJ type
                of the molecule (atoms of one type keep one σ and one ε, as in a force field)

Pooled force-component RMSE and mean-centred energy RMSE over all conformations, side by side
with the model. Usage (from the repository root):
  OMP_NUM_THREADS=1 python scripts/functional_form_floor.py --model runs/v2.pt --data FILE [FILE ...]
      [--max-molecules N | --mol-ids FILE] [--ridge 0.01] [--variants bonded bonded+q ...]
      [--output FILE] [--totals-json FILE]
``--mol-ids`` and ``--totals-json`` split a long run over processes: each writes its squared-error
sums and counts, which add up.
"""

from __future__ import annotations

import argparse
import json
import math
import random

import torch
from torch.func import jacfwd, vmap

from grappa_like import model_file
from grappa_like.api import Model
from grappa_like.data import read_data
from grappa_like.model import torch_network
from grappa_like.energy import COULOMB_CONSTANT, bonded_energy, dihedral_angle, energy_and_forces, nonbonded_energy
from grappa_like.training import lj_tensors, prepare
from grappa_like.units import KJ_PER_NM_TO_KCAL_PER_ANGSTROM, KJ_TO_KCAL
from harness import publish

VARIANTS = ("model", "bonded", "+6n", "+UB", "bonded+q", "bonded+q+LJ")
FREE_NONBONDED = {"bonded+q": False, "bonded+q+LJ": True}  # variant -> LJ free too (charges always)


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


class FreeNonbonded:
    """The nonbonded energy as a function of the free parameters θ = (charges, and with ``lj_free`` a
    log-scale of σ and of ε per LJ type of the molecule with ε > 0); θ = :attr:`start` gives the model's."""

    MAX_LOG_SIGMA_STEP, MAX_LOG_EPSILON_STEP = 0.1, 1.0  # trust region of one Gauss-Newton step (LJ is stiff)

    def __init__(self, pairs, coulomb_scale, lj_scale, charges, sigma, epsilon, lj_class, lj_free: bool):
        self.pairs, self.coulomb_scale, self.lj_scale = pairs, coulomb_scale, lj_scale
        self.sigma, self.epsilon, self.n_atoms = sigma, epsilon, len(charges)
        # atoms with ε = 0 (e.g. GAFF2's hydroxyl H) have no LJ to fit: they point at a last, fixed scale
        classes, self.lj_type = torch.unique(torch.where(epsilon > 0, lj_class, -1), return_inverse=True)
        has_zero = bool((classes == -1).any())
        self.lj_type = (self.lj_type - 1) % len(classes) if has_zero else self.lj_type
        self.n_types = (len(classes) - has_zero) if lj_free else 0
        self.start = torch.cat([charges, charges.new_zeros(2 * self.n_types)])

    def energy(self, x, theta):
        """Nonbonded energy (kJ/mol) of one conformation (n_atoms, 3) nm at parameters ``theta``.

        The same Coulomb + LJ 12-6 (Lorentz-Berthelot) as ``energy.nonbonded_energy``, written with
        sqrt(ε_i)·sqrt(ε_j): its derivative in the ε scales stays finite next to atoms with ε = 0."""
        charges, log_scales = theta[:self.n_atoms], theta[self.n_atoms:]
        sigma, root_epsilon = self.sigma, self.epsilon.sqrt()
        if self.n_types:
            fixed = log_scales.new_zeros(1)
            log_sigma = torch.cat([log_scales[:self.n_types], fixed])[self.lj_type]
            log_epsilon = torch.cat([log_scales[self.n_types:], fixed])[self.lj_type]
            sigma, root_epsilon = sigma * log_sigma.exp(), root_epsilon * (log_epsilon / 2).exp()
        i, j = self.pairs[:, 0], self.pairs[:, 1]
        r = _distances(x, self.pairs)
        s6 = ((sigma[i] + sigma[j]) / (2 * r)) ** 6
        lj = 4.0 * self.lj_scale * root_epsilon[i] * root_epsilon[j] * (s6 * s6 - s6)
        return (COULOMB_CONSTANT * self.coulomb_scale * charges[i] * charges[j] / r + lj).sum()

    def centred(self, step):
        """``step`` with its charge part shifted to sum to zero (the total charge stays)."""
        charges = step[:self.n_atoms]
        return torch.cat([charges - charges.mean(), step[self.n_atoms:]])

    def stepped(self, theta, step):
        """``theta`` after a Gauss-Newton ``step``: charges centred, LJ log-scales within the trust region."""
        step = self.centred(step)
        sigma_step = step[self.n_atoms:self.n_atoms + self.n_types].clamp(-self.MAX_LOG_SIGMA_STEP, self.MAX_LOG_SIGMA_STEP)
        epsilon_step = step[self.n_atoms + self.n_types:].clamp(-self.MAX_LOG_EPSILON_STEP, self.MAX_LOG_EPSILON_STEP)
        return theta + torch.cat([step[:self.n_atoms], sigma_step, epsilon_step])

    def change(self, positions, theta):
        """Energies and forces (kcal units) of all conformations at ``theta`` minus those at :attr:`start`."""
        def energy(x):
            return vmap(lambda one: self.energy(one, theta) - self.energy(one, self.start))(x)
        energies, forces = energy_and_forces(positions, energy)
        return energies.detach() * KJ_TO_KCAL, (forces * KJ_PER_NM_TO_KCAL_PER_ANGSTROM).flatten(1)


def features(x, indices: dict, variant: str):
    """Energy features of one conformation (n_atoms, 3) nm whose linear combination is the bonded energy.

    Bonds and angles give (q²/2, -q) for q = r or θ (weights k and k·q0); torsions cos(nφ) (weight κ_n).
    """
    r, angle = _distances(x, indices["bonds"]), _angles(x, indices["angles"])
    columns = [r * r / 2, -r, angle * angle / 2, -angle,
               _cosines(x, indices["propers"], 6 if variant in ("+6n", "+UB") else 4),
               _cosines(x, indices["impropers"], 2)]
    if variant == "+UB":
        r13 = _distances(x, indices["angles"][:, [0, 2]])
        columns += [r13 * r13 / 2, -r13]
    return torch.cat(columns)


def free_features(x, free: FreeNonbonded, theta):
    """∂E_nonbonded/∂θ of one conformation at ``theta``, the charge columns centred over the atoms
    (the features of the Gauss-Newton step δθ)."""
    return free.centred(torch.func.grad(lambda t: free.energy(x, t))(theta))


def feature_matrices(example, one):
    """Energy features (M, P) and force features (M, 3N, P) of all conformations, kcal units, for the
    feature function ``one`` of a single conformation."""
    energy_features = vmap(one)(example.positions) * KJ_TO_KCAL
    # a few conformations at a time: the Jacobian of the nonbonded columns is large for big molecules
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


def prior_weights(parameters: dict, variant: str, n_free: int = 0):
    """The model's parameters as feature weights (the same order as :func:`features`; kJ/mol units)."""
    proper = parameters["proper_k"]
    if variant in ("+6n", "+UB"):
        proper = torch.cat([proper, proper.new_zeros(proper.shape[0], 2)], dim=1)
    columns = [parameters["bond_k"], parameters["bond_k"] * parameters["bond_r0"], parameters["angle_k"],
               parameters["angle_k"] * parameters["angle_theta0"], proper.flatten(), parameters["improper_k"].flatten()]
    if variant == "+UB":
        columns.append(proper.new_zeros(2 * len(parameters["angle_k"])))
    columns.append(proper.new_zeros(n_free))  # the free nonbonded steps; set at each Gauss-Newton step
    return torch.cat(columns)


GAUSS_NEWTON_STEPS = 4


def floor_fit(example, energy_target, force_target, variant: str, parameters: dict, ridge: float,
              free: FreeNonbonded | None = None) -> dict:
    """Bonded least-squares fits of one molecule: squared errors in-sample (fit and scored on all
    conformations) and held-out (fit on the even-numbered conformations, scored on the odd ones),
    and the count of bond/angle force constants ≤ 0 in the in-sample fit."""
    n_free = 0 if free is None else len(free.start)
    # the bonded columns do not depend on θ: computed once, only the nonbonded ones per Gauss-Newton step
    energy_features, force_features = feature_matrices(example, lambda x: features(x, example.indices, variant))
    prior = prior_weights(parameters, variant, n_free)
    every = torch.arange(len(energy_target))
    even, odd = every[0::2], every[1::2]
    result = {}
    for name, fit_rows, score_rows in (("in_sample", every, every), ("held_out", even, odd)):
        if free is None:
            weights = fit_weights(energy_features, force_features, energy_target, force_target, fit_rows, prior, ridge)
            energy_prediction, force_prediction = energy_features @ weights, force_features @ weights
        else:
            theta = free.start
            for _ in range(GAUSS_NEWTON_STEPS):  # linearise the nonbonded energy at the current θ
                energy_free, force_free = feature_matrices(example, lambda x: free_features(x, free, theta))
                change = free.change(example.positions, theta)
                prior[-n_free:] = free.start - theta
                weights = fit_weights(torch.cat([energy_features, energy_free], -1),
                                      torch.cat([force_features, force_free], -1),
                                      energy_target - change[0], force_target - change[1], fit_rows, prior, ridge)
                theta = free.stepped(theta, weights[-n_free:])
            bonded_weights = weights[:-n_free]
            change = free.change(example.positions, theta)
            energy_prediction = energy_features @ bonded_weights + change[0]
            force_prediction = force_features @ bonded_weights + change[1]
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
    parser.add_argument("--mol-ids", default=None, help="file with the validation molecules to fit, one id per line")
    parser.add_argument("--totals-json", default=None, help="also write the squared-error sums and counts here")
    parser.add_argument("--ridge", type=float, default=1e-3,
                        help="relative ridge towards the model's parameters (default 1e-3)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS[1:], default=list(VARIANTS[1:]),
                        help="which fits to run (default: all)")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    variants = ["model"] + args.variants
    model = Model.from_payload(model_file.load(args.model), args.model)
    network = torch_network(model)
    wanted = set(model.metadata["validation_molecules"])
    if args.mol_ids:
        with open(args.mol_ids) as handle:
            wanted &= set(handle.read().split())
    records = [record for record, _ in read_data(args.data) if record.mol_id in wanted and record.forces is not None]
    if args.max_molecules:
        records = sorted(random.Random(0).sample(records, min(args.max_molecules, len(records))), key=lambda r: r.mol_id)
    sigma_table, epsilon_table = (t.double() for t in lj_tensors(model.lj_table))
    totals = {variant: {"in_sample": [0.0, 0.0], "held_out": [0.0, 0.0], "negative": 0, "constants": 0}
              for variant in variants}
    counts = {"in_sample": [0, 0], "held_out": [0, 0]}
    for number, record in enumerate(records):
        example = prepare(record, model.lj_table)
        positions = example.positions = example.positions.double()
        with torch.no_grad():
            raw = network(example.graph)
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
        for variant in variants[1:]:
            free = None if variant not in FREE_NONBONDED else FreeNonbonded(
                pairs, coulomb_scale.double(), lj_scale.double(), shipped["charges"], sigma_table[lj_class],
                epsilon_table[lj_class], lj_class, lj_free=FREE_NONBONDED[variant])
            result = floor_fit(example, energy_target, force_target, variant, shipped, args.ridge, free)
            for name in ("in_sample", "held_out"):
                for index in range(2):
                    totals[variant][name][index] += result[name][index]
            totals[variant]["negative"] += result["negative"]
            totals[variant]["constants"] += result["constants"]
        print(f"{number + 1}/{len(records)} {record.mol_id}: pooled force RMSE so far (in-sample / held-out) " + ", ".join(
            f"{v} {rmse(totals[v], counts, 'in_sample', 1):.2f}/{rmse(totals[v], counts, 'held_out', 1):.2f}"
            for v in variants), flush=True)
    model_force = {name: rmse(totals["model"], counts, name, 1) for name in ("in_sample", "held_out")}
    lines = [f"{len(records)} validation molecules of {args.model}, {counts['in_sample'][0]} conformations; "
             f"least-squares fits of the bonded terms per molecule (charges and LJ the model's; ridge {args.ridge} "
             "towards the model's parameters). In-sample: "
             "fitted and scored on all conformations of the molecule; held-out: fitted on the even-numbered, "
             f"scored on the odd-numbered ({counts['held_out'][0]}) conformations", "",
             "| parameters | force RMSE in-sample | energy RMSE in-sample | force RMSE held-out | energy RMSE held-out "
             "| held-out force vs model | bond/angle k ≤ 0 (in-sample) |", "|---|---|---|---|---|---|---|"]
    for variant in variants:
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
    if args.totals_json:
        with open(args.totals_json, "w") as handle:
            json.dump({"molecules": [record.mol_id for record in records], "totals": totals, "counts": counts}, handle)


def rmse(total: dict, counts: dict, name: str, part: int) -> float:
    """Pooled RMSE of ``part`` (0 energy, 1 force) of one variant's totals over the ``name`` rows."""
    return math.sqrt(total[name][part] / counts[name][part])


if __name__ == "__main__":
    main()
