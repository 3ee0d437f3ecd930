"""MM energy of the Amber functional form in torch, differentiable in positions and parameters.

Positions in nm, energies in kJ/mol, forces in kJ/mol/nm (OpenMM units). Works on a stack of
conformations of one molecule: positions (n_conformations, n_atoms, 3).
"""

from __future__ import annotations

import numpy as np
import torch

from grappa_like.parameters import COULOMB_14_SCALE, LJ_14_SCALE

COULOMB_CONSTANT = 138.935456  # kJ mol⁻¹ nm e⁻², as in OpenMM


def _distance(positions, index):
    return torch.linalg.vector_norm(positions[:, index[:, 0]] - positions[:, index[:, 1]], dim=-1)


def bond_energy(positions, bonds, k, r0):
    """Σ k/2 (r - r0)² per conformation."""
    return (0.5 * k * (_distance(positions, bonds) - r0) ** 2).sum(-1)


def angle_energy(positions, angles, k, theta0):
    """Σ k/2 (θ - θ0)² per conformation."""
    v1 = positions[:, angles[:, 0]] - positions[:, angles[:, 1]]
    v2 = positions[:, angles[:, 2]] - positions[:, angles[:, 1]]
    cross = torch.linalg.vector_norm(torch.cross(v1, v2, dim=-1), dim=-1)
    theta = torch.atan2(cross, (v1 * v2).sum(-1))
    return (0.5 * k * (theta - theta0) ** 2).sum(-1)


def dihedral_angle(positions, quadruples):
    """Dihedral angle (rad) of every quadruple (i, j, k, l), shape (n_conformations, n_quadruples)."""
    b1 = positions[:, quadruples[:, 1]] - positions[:, quadruples[:, 0]]
    b2 = positions[:, quadruples[:, 2]] - positions[:, quadruples[:, 1]]
    b3 = positions[:, quadruples[:, 3]] - positions[:, quadruples[:, 2]]
    n1 = torch.cross(b1, b2, dim=-1)
    n2 = torch.cross(b2, b3, dim=-1)
    m1 = torch.cross(n1, b2 / torch.linalg.vector_norm(b2, dim=-1, keepdim=True), dim=-1)
    return torch.atan2((m1 * n2).sum(-1), (n1 * n2).sum(-1))


def torsion_energy(positions, quadruples, signed_k):
    """Σ_n |κ_n| (1 + sign(κ_n) cos(n φ)) = Σ_n |κ_n| + κ_n cos(n φ), per conformation."""
    if quadruples.shape[0] == 0:
        return positions.new_zeros(positions.shape[0])
    phi = dihedral_angle(positions, quadruples)
    periodicities = torch.arange(1, signed_k.shape[1] + 1, dtype=positions.dtype, device=positions.device)
    cosines = torch.cos(phi[..., None] * periodicities)
    return (signed_k.abs() + signed_k * cosines).sum((-1, -2))


def bonded_energy(positions, graph_indices: dict, parameters: dict):
    """Sum of bond, angle, proper and improper energies per conformation (kJ/mol)."""
    return (
        bond_energy(positions, graph_indices["bonds"], parameters["bond_k"], parameters["bond_r0"])
        + angle_energy(positions, graph_indices["angles"], parameters["angle_k"], parameters["angle_theta0"])
        + torsion_energy(positions, graph_indices["propers"], parameters["proper_k"])
        + torsion_energy(positions, graph_indices["impropers"], parameters["improper_k"])
    )


def nonbonded_pairs(interactions):
    """(pairs (n, 2), Coulomb scale (n,), LJ scale (n,)) over all non-excluded atom pairs, 1-4 scaled."""
    n = interactions.n_atoms
    i, j = np.triu_indices(n, k=1)
    key = i * n + j
    excluded = interactions.exclusions[:, 0] * n + interactions.exclusions[:, 1]
    keep = ~np.isin(key, excluded)
    i, j, key = i[keep], j[keep], key[keep]
    is_14 = np.isin(key, interactions.pairs14[:, 0] * n + interactions.pairs14[:, 1])
    coulomb_scale = np.where(is_14, COULOMB_14_SCALE, 1.0)
    lj_scale = np.where(is_14, LJ_14_SCALE, 1.0)
    return np.stack([i, j], axis=1), coulomb_scale, lj_scale


def nonbonded_energy(positions, pairs, coulomb_scale, lj_scale, charges, sigma, epsilon):
    """Coulomb + LJ 12-6 (Lorentz-Berthelot) over the given pairs, per conformation (kJ/mol)."""
    if pairs.shape[0] == 0:
        return positions.new_zeros(positions.shape[0])
    r = _distance(positions, pairs)
    i, j = pairs[:, 0], pairs[:, 1]
    coulomb = COULOMB_CONSTANT * coulomb_scale * charges[i] * charges[j] / r
    pair_sigma = 0.5 * (sigma[i] + sigma[j])
    pair_epsilon = lj_scale * torch.sqrt(epsilon[i] * epsilon[j])
    s6 = (pair_sigma / r) ** 6
    return (coulomb + 4.0 * pair_epsilon * (s6 * s6 - s6)).sum(-1)


def energy_and_forces(positions, energy_function, create_graph: bool = False):
    """Evaluate ``energy_function(positions)`` per conformation and its forces -dE/dx.

    With ``create_graph`` the forces stay differentiable (for force-matching losses).
    """
    with torch.enable_grad():
        positions = positions.detach().requires_grad_(True)
        energy = energy_function(positions)
        if not energy.requires_grad:  # no term depends on positions (e.g. no nonbonded pairs)
            return energy, torch.zeros_like(positions)
        (gradient,) = torch.autograd.grad(energy.sum(), positions, create_graph=create_graph)
    return energy, -gradient


def parameters_energy(positions, parameters, include_nonbonded: bool = True):
    """Total MM energy (kJ/mol) per conformation for a :class:`~grappa_like.parameters.Parameters`.

    ``positions``: (n_conformations, n_atoms, 3) in nm, numpy or torch; computed in float64.
    """
    positions = torch.as_tensor(positions, dtype=torch.float64)
    interactions = parameters.interactions
    indices = {key: torch.from_numpy(getattr(interactions, key)) for key in ("bonds", "angles", "propers", "impropers")}
    values = {
        key: torch.as_tensor(np.asarray(getattr(parameters, key)), dtype=torch.float64)
        for key in ("bond_k", "bond_r0", "angle_k", "angle_theta0", "proper_k", "improper_k")
    }
    energy = bonded_energy(positions, indices, values)
    if include_nonbonded:
        pairs, coulomb_scale, lj_scale = nonbonded_pairs(interactions)
        energy = energy + nonbonded_energy(
            positions, torch.from_numpy(pairs), torch.from_numpy(coulomb_scale), torch.from_numpy(lj_scale),
            *(torch.as_tensor(np.asarray(getattr(parameters, key)), dtype=torch.float64)
              for key in ("charges", "sigma", "epsilon")),
        )
    return energy
