"""Exports (GROMACS, Amber, ffxml): files loaded back by OpenMM give the energy and forces of the reference System.

Parameters come from a freshly initialised small network (``random_model`` in conftest: last
layers normal(std=0.05), fixed seed). Its proper amplitudes all come out negative (phase π), so
the sign of every other proper row and periodicity is flipped to exercise phase 0 as well.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np
import openmm
import pytest
from openmm import app, unit

from grappa_like import errors, export
from grappa_like.molecule import from_smiles
from grappa_like.writers import to_openmm_system

MOLECULES = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",   # multi-periodicity torsions, impropers, 6-ring
    "acetate": "CC(=O)[O-]",              # anion, improper on the carboxylate
    "methylammonium": "C[NH3+]",          # cation, no impropers
    "acetonitrile": "CC#N",               # 1-4 pairs across a linear atom, no torsion term
    "pyrrolidine": "C1CCNC1",             # 5-ring: chain ends that are 1-3 pairs
    "cyclobutane": "C1CCC1",              # 4-ring: chain ends that are bonded
}
FORMATS = ("gromacs", "amber", "ffxml")
N_CONFORMATIONS = 3
RELATIVE_TOLERANCE = 1e-4


def _energy_forces(system: openmm.System, positions_nm: np.ndarray, groups=-1):
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions_nm)
    state = context.getState(getEnergy=True, getForces=True, groups=groups)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return energy, np.asarray(forces)


def _load(fmt: str, files: list[str], molecule) -> openmm.System:
    if fmt == "gromacs":
        return app.GromacsTopFile(files[0]).createSystem(nonbondedMethod=app.NoCutoff)
    if fmt == "amber":
        return app.AmberPrmtopFile(files[0]).createSystem(nonbondedMethod=app.NoCutoff)
    return app.ForceField(files[0]).createSystem(export.openmm_topology(molecule), nonbondedMethod=app.NoCutoff)


@pytest.fixture(scope="module")
def cases(random_model, tmp_path_factory):
    """Per molecule: molecule, parameters, reference System, perturbed conformations (nm), exported files."""
    pytest.importorskip("parmed")
    folder = tmp_path_factory.mktemp("export")
    molecules = [from_smiles(smiles, name) for name, smiles in MOLECULES.items()]
    rng = np.random.default_rng(7)
    result = {}
    for molecule, parameters in zip(molecules, random_model.predict(molecules)):
        proper_k = parameters.proper_k.copy()
        proper_k[1::2, ::2] *= -1.0
        parameters = dataclasses.replace(parameters, proper_k=proper_k)
        xyz = molecule.conformer_positions()
        prefix = str(folder / molecule.name)
        result[molecule.name] = {
            "molecule": molecule,
            "parameters": parameters,
            "reference": to_openmm_system(parameters, molecule.atomic_numbers),
            "conformations": [(xyz + rng.normal(scale=0.08, size=xyz.shape)) / 10.0 for _ in range(N_CONFORMATIONS)],
            "gromacs": export.to_gromacs(molecule, parameters, prefix),
            "amber": export.to_amber(molecule, parameters, prefix),
            "ffxml": [export.to_ffxml(molecule, parameters, prefix + ".xml")],
        }
    return result


def test_parameters_are_not_trivial(cases):
    proper_k = cases["aspirin"]["parameters"].proper_k
    improper_k = cases["aspirin"]["parameters"].improper_k
    assert (proper_k > 0.01).any() and (proper_k < -0.01).any()
    assert (improper_k != 0).all() and len(improper_k) == 24


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", MOLECULES)
def test_round_trip_energies_and_forces(cases, name, fmt):
    case = cases[name]
    system = _load(fmt, case[fmt], case["molecule"])
    for positions in case["conformations"]:
        e_ref, f_ref = _energy_forces(case["reference"], positions)
        e_out, f_out = _energy_forces(system, positions)
        assert abs(e_out - e_ref) <= RELATIVE_TOLERANCE * max(abs(e_ref), 1.0), (fmt, name, e_ref, e_out)
        assert np.abs(f_out - f_ref).max() <= RELATIVE_TOLERANCE * np.abs(f_ref).max(), (fmt, name)


def _sections(path: str) -> dict[str, list[list[str]]]:
    sections, current = {}, None
    with open(path) as handle:
        for line in handle:
            line = line.split(";")[0].strip()
            if line.startswith("["):
                current = line.strip("[] ")
                sections.setdefault(current, [])
            elif line and current:
                sections[current].append(line.split())
    return sections


@pytest.mark.parametrize("name", MOLECULES)
def test_gromacs_top_is_self_contained_with_each_14_pair_once(cases, name):
    case = cases[name]
    top, gro = case["gromacs"]
    assert top.endswith(".top") and gro.endswith(".gro")
    text = open(top).read()
    assert "#include" not in text
    sections = _sections(top)
    assert sections["defaults"] == [["1", "2", "yes", "0.5", repr(1 / 1.2)]]
    pairs = sorted((int(row[0]) - 1, int(row[1]) - 1) for row in sections.get("pairs", []))
    assert pairs == sorted(map(tuple, case["parameters"].interactions.pairs14.tolist()))
    gro_lines = open(gro).read().splitlines()
    xyz = np.array([[float(line[20 + 8 * k:28 + 8 * k]) for k in range(3)] for line in gro_lines[2:-1]])
    np.testing.assert_allclose(xyz, case["molecule"].conformer_positions() / 10.0, atol=6e-4)


@pytest.mark.parametrize("name", MOLECULES)
def test_amber_14_pairs_once_and_impropers_without_14(cases, name):
    import parmed

    case = cases[name]
    interactions = case["parameters"].interactions
    parm = parmed.load_file(case["amber"][0], xyz=case["amber"][1])
    carried = sorted(tuple(sorted((d.atom1.idx, d.atom4.idx))) for d in parm.dihedrals if not d.ignore_end)
    assert carried == sorted(map(tuple, interactions.pairs14.tolist()))
    assert all(abs(d.type.scee - 1.2) < 1e-8 and abs(d.type.scnb - 2.0) < 1e-8
               for d in parm.dihedrals if not d.ignore_end)
    def oriented(quadruple):  # Amber may store a dihedral reversed (an index 0 cannot carry a sign)
        quadruple = tuple(quadruple)
        return min(quadruple, quadruple[::-1])

    impropers = [oriented(a.idx for a in (d.atom1, d.atom2, d.atom3, d.atom4)) for d in parm.dihedrals if d.improper]
    n_terms = case["parameters"].improper_k.shape[1]
    assert sorted(impropers) == sorted(oriented(q) for q in interactions.impropers.tolist() for _ in range(n_terms))
    assert all(d.ignore_end for d in parm.dihedrals if d.improper)
    np.testing.assert_allclose(parm.coordinates, case["molecule"].conformer_positions(), atol=1e-6)


def test_ffxml_files_load_together_and_type_every_copy(cases):
    """Two molecules' ffxml in one ForceField; two aspirin copies + acetate in one Topology."""
    aspirin, acetate = cases["aspirin"], cases["acetate"]
    forcefield = app.ForceField(aspirin["ffxml"][0], acetate["ffxml"][0])
    for case in (aspirin, acetate):
        system = forcefield.createSystem(export.openmm_topology(case["molecule"]), nonbondedMethod=app.NoCutoff)
        positions = case["conformations"][0]
        assert _energy_forces(system, positions)[0] == pytest.approx(
            _energy_forces(case["reference"], positions)[0], rel=RELATIVE_TOLERANCE)

    nm = unit.nanometer
    modeller = app.Modeller(export.openmm_topology(aspirin["molecule"]), aspirin["conformations"][0] * nm)
    modeller.add(export.openmm_topology(acetate["molecule"]), (acetate["conformations"][0] + 2.0) * nm)
    modeller.add(export.openmm_topology(aspirin["molecule"]), (aspirin["conformations"][1] - 2.0) * nm)
    for atom in modeller.topology.atoms():   # templates match by graph, not by names
        atom.name = f"X{atom.index}"
    system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.NoCutoff)
    positions = np.asarray(modeller.getPositions().value_in_unit(unit.nanometer))

    def bonded(system, positions) -> float:
        for force in system.getForces():
            force.setForceGroup(1 if isinstance(force, openmm.NonbondedForce) else 0)
        return _energy_forces(system, positions, groups={0})[0]

    expected = (bonded(aspirin["reference"], aspirin["conformations"][0])
                + bonded(acetate["reference"], acetate["conformations"][0] + 2.0)
                + bonded(aspirin["reference"], aspirin["conformations"][1] - 2.0))
    assert bonded(system, positions) == pytest.approx(expected, rel=1e-9)


def test_ffxml_types_are_unique_per_atom_and_tagged(cases):
    case = cases["aspirin"]
    tag = export.parameter_tag(case["molecule"], case["parameters"])
    text = open(case["ffxml"][0]).read()
    names = export.atom_names(case["molecule"])
    assert len(set(names)) == len(names)
    for name in names:
        assert text.count(f'<Type name="{tag}-{name}"') == 1
    assert f'<Residue name="GL-{tag}">' in text


def test_openmm_topology_matches_the_molecule(cases):
    molecule = cases["aspirin"]["molecule"]
    topology = export.openmm_topology(molecule, residue_name="ASP")
    assert [r.name for r in topology.residues()] == ["ASP"]
    assert [a.element.atomic_number for a in topology.atoms()] == molecule.atomic_numbers.tolist()
    assert topology.getNumBonds() == molecule.rdkit_mol.GetNumBonds()


def test_paths_extensions_and_no_leftover_files(cases, tmp_path):
    case = cases["acetate"]
    files = export.to_gromacs(case["molecule"], case["parameters"], tmp_path / "acetate.top")
    files += export.to_amber(case["molecule"], case["parameters"], tmp_path / "acetate.prmtop")
    files.append(export.to_ffxml(case["molecule"], case["parameters"], tmp_path / "acetate.xml"))
    expected = ["acetate.top", "acetate.gro", "acetate.prmtop", "acetate.inpcrd", "acetate.xml"]
    assert [os.path.basename(f) for f in files] == expected
    assert sorted(os.listdir(tmp_path)) == sorted(expected)


def test_missing_parmed_gives_a_typed_error(cases, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "parmed", None)
    case = cases["acetate"]
    with pytest.raises(errors.MissingDependencyError, match="parmed"):
        export.to_amber(case["molecule"], case["parameters"], tmp_path / "x")


def test_mismatched_parameters_are_refused(cases, tmp_path):
    with pytest.raises(ValueError, match="atoms"):
        export.to_gromacs(cases["acetate"]["molecule"], cases["aspirin"]["parameters"], tmp_path / "x")
