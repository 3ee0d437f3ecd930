"""Writer: :class:`~grappa_like.parameters.Parameters` -> OpenMM ``System`` with the four standard forces.

The System holds exactly the terms of the energy function (HarmonicBondForce, HarmonicAngleForce,
PeriodicTorsionForce for propers and impropers, NonbondedForce with 1-2/1-3 exclusions and Amber
1-4 exceptions), so MD runs at the speed of classical MM and nothing of the network remains.
"""

from __future__ import annotations

import numpy as np
import openmm
from openmm import app

from grappa_like.energy import COULOMB_14_SCALE, LJ_14_SCALE
from grappa_like.parameters import Parameters


def to_openmm_system(parameters: Parameters, atomic_numbers) -> openmm.System:
    """Build an OpenMM System (NoCutoff, no constraints) from the parameters of one molecule."""
    interactions = parameters.interactions
    system = openmm.System()
    for atomic_number in atomic_numbers:
        system.addParticle(app.Element.getByAtomicNumber(int(atomic_number)).mass)

    bond_force = openmm.HarmonicBondForce()
    for (i, j), r0, k in zip(interactions.bonds, parameters.bond_r0, parameters.bond_k):
        bond_force.addBond(int(i), int(j), float(r0), float(k))

    angle_force = openmm.HarmonicAngleForce()
    for (i, j, k), theta0, force_constant in zip(interactions.angles, parameters.angle_theta0, parameters.angle_k):
        angle_force.addAngle(int(i), int(j), int(k), float(theta0), float(force_constant))

    torsion_force = openmm.PeriodicTorsionForce()
    for quadruples, signed_k in ((interactions.propers, parameters.proper_k),
                                 (interactions.impropers, parameters.improper_k)):
        for row, periodicity, phase, k in Parameters.torsion_terms(signed_k):
            torsion_force.addTorsion(*(int(a) for a in quadruples[row]), periodicity, phase, k)

    nonbonded_force = openmm.NonbondedForce()
    nonbonded_force.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
    for charge, sigma, epsilon in zip(parameters.charges, parameters.sigma, parameters.epsilon):
        nonbonded_force.addParticle(float(charge), float(sigma), float(epsilon))
    for i, j in interactions.exclusions:
        nonbonded_force.addException(int(i), int(j), 0.0, 1.0, 0.0)
    q, s, e = parameters.charges, parameters.sigma, parameters.epsilon
    for i, j in interactions.pairs14:
        nonbonded_force.addException(
            int(i), int(j),
            float(COULOMB_14_SCALE * q[i] * q[j]),
            float(0.5 * (s[i] + s[j])),
            float(LJ_14_SCALE * np.sqrt(e[i] * e[j])),
        )

    for force in (bond_force, angle_force, torsion_force, nonbonded_force):
        system.addForce(force)
    return system
