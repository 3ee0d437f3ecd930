"""Writer: :class:`~grappa_like.parameters.Parameters` -> OpenMM ``System`` with the four standard forces.

The System holds exactly the terms of the energy function (HarmonicBondForce, HarmonicAngleForce,
PeriodicTorsionForce for propers and impropers, NonbondedForce with 1-2/1-3 exclusions and Amber
1-4 exceptions), so MD runs at the speed of classical MM and nothing of the network remains.
"""

from __future__ import annotations

import numpy as np
import openmm
from openmm import app

from grappa_like.parameters import COULOMB_14_SCALE, LJ_14_SCALE, Parameters


def to_openmm_system(parameters: Parameters, atomic_numbers) -> openmm.System:
    """Build an OpenMM System (NoCutoff, no constraints) from the parameters of one molecule."""
    interactions = parameters.interactions
    system = openmm.System()
    for atomic_number in atomic_numbers:
        system.addParticle(app.Element.getByAtomicNumber(int(atomic_number)).mass)

    bond_force = openmm.HarmonicBondForce()
    for (i, j), r0, k in zip(interactions.bonds.tolist(), parameters.bond_r0.tolist(), parameters.bond_k.tolist()):
        bond_force.addBond(i, j, r0, k)

    angle_force = openmm.HarmonicAngleForce()
    for (i, j, k), theta0, force_constant in zip(interactions.angles.tolist(), parameters.angle_theta0.tolist(),
                                                 parameters.angle_k.tolist()):
        angle_force.addAngle(i, j, k, theta0, force_constant)

    torsion_force = openmm.PeriodicTorsionForce()
    for quadruples, signed_k in ((interactions.propers, parameters.proper_k),
                                 (interactions.impropers, parameters.improper_k)):
        quadruples = quadruples.tolist()
        for row, periodicity, phase, k in Parameters.torsion_terms(signed_k):
            i, j, k_atom, l = quadruples[row]
            torsion_force.addTorsion(i, j, k_atom, l, periodicity, phase, k)

    nonbonded_force = openmm.NonbondedForce()
    nonbonded_force.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
    for charge, sigma, epsilon in zip(parameters.charges.tolist(), parameters.sigma.tolist(), parameters.epsilon.tolist()):
        nonbonded_force.addParticle(charge, sigma, epsilon)
    for i, j in interactions.exclusions.tolist():
        nonbonded_force.addException(i, j, 0.0, 1.0, 0.0)
    q, s, e = parameters.charges, parameters.sigma, parameters.epsilon
    pairs = interactions.pairs14
    charge_products = (COULOMB_14_SCALE * q[pairs[:, 0]] * q[pairs[:, 1]]).tolist()
    mean_sigmas = (0.5 * (s[pairs[:, 0]] + s[pairs[:, 1]])).tolist()
    epsilons = (LJ_14_SCALE * np.sqrt(e[pairs[:, 0]] * e[pairs[:, 1]])).tolist()
    for (i, j), charge_product, sigma, epsilon in zip(pairs.tolist(), charge_products, mean_sigmas, epsilons):
        nonbonded_force.addException(i, j, charge_product, sigma, epsilon)

    for force in (bond_force, angle_force, torsion_force, nonbonded_force):
        system.addForce(force)
    return system
