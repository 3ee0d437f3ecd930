"""Dataset builder: conformations, GFN2 labels, the written file, resume after a kill, failures, labelers.

Tiny molecules and a reduced recipe (6 conformations, 4 torsion points, 1 driven bond) keep the
default run short on one core.
"""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from rdkit import Chem

from grappa_like import errors
from grappa_like.data import LAYOUT, read_records
from grappa_like.dataset import (BuildSettings, ConformerError, ConformerRecipe, DatasetBuildError, MoleculeTask,
                                 build_dataset, build_molecule, conjugated_drives, generate_conformations,
                                 mapped_smiles, torsion_drives, unique_mol_ids)
from grappa_like.labelers import (GFN2Labeler, Labeler, LabelerFailedError, LabelerRejectedError, LabelerSpec,
                                  is_zwitterion, parse_pyscf_method)

try:
    import tblite.interface  # noqa: F401
    HAVE_TBLITE = True
except ImportError:
    HAVE_TBLITE = False
needs_tblite = pytest.mark.skipif(not HAVE_TBLITE, reason="tblite (grappa_like[data]) not installed")

SMALL = ConformerRecipe(conformations=6, torsion_points=4, max_torsions=1)
ANI_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "teachers", "ani-2x")
MOLECULES = "C methane\nO water\nCCO ethanol\n[SiH4] silane\n"


def _ambertools() -> bool:
    from grappa_like.baselines import ambertools_available

    return ambertools_available()


def _mol(smiles):
    from grappa_like.molecule import from_smiles

    return from_smiles(smiles).rdkit_mol


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """methane, water, ethanol (and silane, which fails at input) built with GFN2 in this process."""
    folder = tmp_path_factory.mktemp("build")
    smiles_file = folder / "tiny.smi"
    smiles_file.write_text(MOLECULES)
    settings = BuildSettings(labeler=LabelerSpec("gfn2"), recipe=SMALL, subset="tiny", am1bcc=_ambertools())
    report = build_dataset(str(smiles_file), str(folder / "tiny.h5"), settings, progress=False)
    return folder, report


@needs_tblite
def test_builder_writes_a_valid_file(built):
    folder, report = built
    path = folder / "tiny.h5"
    assert sorted(report.written) == ["ethanol", "methane", "water"]
    with h5py.File(path, "r") as handle:
        assert handle.attrs["layout"] == LAYOUT
        assert handle.attrs["level_of_theory.gfn2"].startswith("GFN2-xTB (tblite ")
        assert "source" in handle.attrs and "builder" in handle.attrs
        for mol_id in ("methane", "water", "ethanol"):
            group = handle[mol_id]
            n_rows, n_atoms = group["conformations"].shape[:2]
            assert group["atomic_numbers"].dtype == np.int8
            assert group["conformations"].dtype == np.float32
            assert group["energy/gfn2"].dtype == np.float64 and group["energy/gfn2"].shape == (n_rows,)
            assert group["forces/gfn2"].shape == (n_rows, n_atoms, 3) and group["forces/gfn2"].dtype == np.float32
            kinds = group.attrs["conformation_kinds"].split(",")
            assert len(kinds) == n_rows and kinds[0] == "min"
            assert {"smiles", "name", "subset", "total_charge"} <= set(group.attrs)
            assert group.attrs["subset"] == "tiny" and group.attrs["total_charge"] == 0
        # ethanol: minima + MD snapshots (6) plus one driven torsion with 4 points
        kinds = handle["ethanol"].attrs["conformation_kinds"].split(",")
        assert len([k for k in kinds if not k.startswith("torsion:")]) == 6
        assert len([k for k in kinds if k.startswith("torsion:")]) == 4
        assert any(k.startswith("md") for k in kinds)
    records = {r.mol_id: r for r in read_records(str(path), ("gfn2",))}
    assert sorted(records) == ["ethanol", "methane", "water"]
    ethanol = records["ethanol"]
    assert list(ethanol.molecule.atomic_numbers) == [6, 6, 8, 1, 1, 1, 1, 1, 1]
    spread = (ethanol.energies - ethanol.energies.min()) / 4.184
    assert 0 < spread.max() < 150  # kcal/mol: thermal structures, nothing wild
    if _ambertools():
        assert abs(ethanol.am1bcc_charges.sum()) < 0.02 and ethanol.gaff2_types[2] == "oh"


@needs_tblite
def test_input_failures_are_listed(built):
    folder, report = built
    assert [f[0] for f in report.failures] == ["silane"]
    lines = (folder / "tiny.h5.failures.tsv").read_text().splitlines()
    assert lines[0] == "record\tinput\terror_class\tmessage"
    assert lines[1].startswith("silane\t") and "UnsupportedElementError" in lines[1]


@needs_tblite
def test_forces_are_minus_the_energy_gradient(built):
    """Central finite difference of the GFN2 energy on a stored MD conformation of ethanol."""
    folder, _ = built
    with h5py.File(folder / "tiny.h5", "r") as handle:
        kinds = handle["ethanol"].attrs["conformation_kinds"].split(",")
        row = next(i for i, kind in enumerate(kinds) if kind.startswith("md"))
        positions = handle["ethanol/conformations"][row].astype(np.float64)
        stored_energy = handle["ethanol/energy/gfn2"][row]
        stored_forces = handle["ethanol/forces/gfn2"][row].astype(np.float64)
        numbers = handle["ethanol/atomic_numbers"][:]
    labeler = GFN2Labeler()
    energy, _ = labeler.single_point(numbers, positions, 0)
    assert energy == pytest.approx(stored_energy, abs=0.05)  # stored positions are float32
    step = 1e-3  # Å
    checked = 0
    for atom, axis in ((0, 0), (2, 1), (8, 2)):
        plus, minus = positions.copy(), positions.copy()
        plus[atom, axis] += step
        minus[atom, axis] -= step
        derivative = (labeler.single_point(numbers, plus, 0)[0] - labeler.single_point(numbers, minus, 0)[0]) / (2 * step)
        assert -derivative == pytest.approx(stored_forces[atom, axis], abs=0.05 + 0.01 * abs(derivative))
        checked += abs(derivative) > 1.0
    assert checked >= 1  # at least one component large enough that a sign error would show


def test_conformations_are_deterministic_and_drives_hit_their_angles():
    from rdkit.Chem import rdMolTransforms

    mol = _mol("CCCO")
    first = generate_conformations(mol, SMALL, seed=11)
    second = generate_conformations(mol, SMALL, seed=11)
    np.testing.assert_array_equal(first.positions, second.positions)
    assert first.kinds == second.kinds and first.force_field == "MMFF94"
    [dihedral] = torsion_drives(mol, 1)
    assert all(mol.GetAtomWithIdx(i).GetAtomicNum() > 1 for i in dihedral)  # heavy-atom torsion first
    work = type(mol)(mol)
    for xyz, kind in zip(first.positions, first.kinds):
        if not kind.startswith("torsion:"):
            continue
        work.RemoveAllConformers()
        from rdkit import Chem

        conformer = Chem.Conformer(work.GetNumAtoms())
        for index, point in enumerate(xyz):
            conformer.SetAtomPosition(index, point.tolist())
        work.AddConformer(conformer)
        target = float(kind.split(":")[2])
        angle = rdMolTransforms.GetDihedralDeg(work.GetConformer(), *dihedral)
        assert abs((angle - target + 180) % 360 - 180) < 2.0


def test_uff_fallback_and_helpers():
    mol = _mol("FP(F)(F)(F)F")  # PF5: MMFF94 has no type for pentavalent P, UFF has
    conformations = generate_conformations(mol, ConformerRecipe(conformations=3, torsion_points=0), seed=1)
    assert conformations.force_field == "UFF" and conformations.positions.shape == (3, 6, 3)
    bond = np.linalg.norm(conformations.positions[0, 0] - conformations.positions[0, 1])
    assert 1.4 < bond < 1.8  # Å: a P-F bond
    assert unique_mol_ids(["a b", "a b", "", ".x"]) == ["a_b", "a_b_2", "mol3", "x"]
    assert parse_pyscf_method("b3lyp-d3bj/def2-svp") == ("b3lyp", "d3bj", "def2-svp")
    assert parse_pyscf_method("hf/sto-3g") == ("hf", None, "sto-3g")
    with pytest.raises(ValueError):
        parse_pyscf_method("b3lyp")
    assert not is_zwitterion([0, 1, -1, 0], [(0, 1), (1, 2), (1, 3)])  # nitro-like: charges side by side
    assert is_zwitterion([1, 0, 0, -1], [(0, 1), (1, 2), (2, 3)])


@dataclass(frozen=True)
class _FlakySpec(LabelerSpec):
    """A LabelerSpec whose labeler fails on conformation row 2 and rejects molecules with oxygen."""

    def make(self):
        return _FlakyLabeler()


class _FlakyLabeler(Labeler):
    label = "fake"

    def __init__(self):
        self.calls = 0

    def level_of_theory(self):
        return "fake harmonic labeler (tests)"

    def check(self, atomic_numbers, total_charge, formal_charges=None, bonds=()):
        if 8 in list(atomic_numbers):
            raise LabelerRejectedError("no oxygen, please")

    def single_point(self, atomic_numbers, positions, total_charge):
        self.calls += 1
        if self.calls == 3:
            raise LabelerFailedError("SCF not converged (on purpose)")
        return _harmonic(positions)


def _harmonic(positions):
    """Energy and forces of a harmonic well around the centroid."""
    centred = positions - positions.mean(0)
    return float((centred ** 2).sum()), -2.0 * centred


def test_failed_rows_are_dropped_and_rejected_molecules_listed(tmp_path):
    smiles_file = tmp_path / "in.smi"
    smiles_file.write_text("C methane\nO water\nCC ethane\n")
    settings = BuildSettings(labeler=_FlakySpec("gfn2"), recipe=ConformerRecipe(conformations=5, torsion_points=0),
                             am1bcc=False)
    report = build_dataset(str(smiles_file), str(tmp_path / "out.h5"), settings, progress=False)
    assert sorted(report.written) == ["ethane", "methane"]
    assert [(f[0], f[2]) for f in report.failures] == [("water", "LabelerRejectedError")]
    with h5py.File(tmp_path / "out.h5", "r") as handle:
        assert handle.attrs["level_of_theory.fake"] == "fake harmonic labeler (tests)"
        assert handle["methane/energy/fake"].shape == (4,)  # row 2 failed and was dropped
        assert "SCF not converged (on purpose)" in handle["methane"].attrs["dropped_conformations"]
    # a second run keeps the recorded failure without trying again, and rewrites nothing
    before = os.stat(tmp_path / "out.h5").st_mtime_ns
    again = build_dataset(str(smiles_file), str(tmp_path / "out.h5"), settings, progress=False)
    assert again.computed == [] and [f[0] for f in again.failures] == ["water"]
    assert os.stat(tmp_path / "out.h5").st_mtime_ns == before
    retried = build_dataset(str(smiles_file), str(tmp_path / "out.h5"), settings, retry_failed=True, progress=False)
    assert retried.computed == [] and [f[0] for f in retried.failures] == ["water"]
    # other settings on the same parts folder are refused
    other = BuildSettings(labeler=_FlakySpec("gfn2"), recipe=ConformerRecipe(conformations=6, torsion_points=0),
                          am1bcc=False)
    with pytest.raises(DatasetBuildError, match="recipe.conformations"):
        build_dataset(str(smiles_file), str(tmp_path / "out.h5"), other, progress=False)


@dataclass(frozen=True)
class _HarmonicSpec(LabelerSpec):
    """A LabelerSpec whose labeler never fails (a harmonic well around the centroid) and takes
    ``seconds`` per conformation (only of molecules with ``slow_element``, if given)."""

    seconds: float = 0.0
    slow_element: int | None = None

    def make(self):
        return _HarmonicLabeler(self.seconds, self.slow_element)


class _HarmonicLabeler(_FlakyLabeler):
    def __init__(self, seconds: float = 0.0, slow_element: int | None = None):
        super().__init__()
        self.seconds, self.slow_element, self.slow = seconds, slow_element, False

    def check(self, atomic_numbers, total_charge, formal_charges=None, bonds=()):
        self.slow = self.slow_element is None or self.slow_element in list(atomic_numbers)

    def single_point(self, atomic_numbers, positions, total_charge):
        if self.seconds and self.slow:
            time.sleep(self.seconds)
        return _harmonic(positions)


def test_a_molecule_over_its_time_limit_fails_and_the_build_goes_on(tmp_path):
    smiles_file = tmp_path / "in.smi"
    smiles_file.write_text("CN methylamine\nC methane\n")
    settings = BuildSettings(labeler=_HarmonicSpec("gfn2", seconds=10, slow_element=7),
                             recipe=ConformerRecipe(conformations=3, torsion_points=0), am1bcc=False,
                             molecule_timeout_s=1.0)
    started = time.monotonic()
    report = build_dataset(str(smiles_file), str(tmp_path / "out.h5"), settings, progress=False)
    assert time.monotonic() - started < 8
    assert report.written == ["methane"]
    assert [(f[0], f[2]) for f in report.failures] == [("methylamine", "MoleculeTimeoutError")]
    assert "--molecule-timeout" in report.failures[0][3]


def test_a_time_limit_writes_the_finished_molecules_and_the_same_call_goes_on(tmp_path):
    smiles_file = tmp_path / "in.smi"
    smiles_file.write_text("C methane\nCN methylamine\nCC ethane\n")
    settings = BuildSettings(labeler=_HarmonicSpec("gfn2", seconds=0.2),
                             recipe=ConformerRecipe(conformations=3, torsion_points=0), am1bcc=False)
    out = tmp_path / "out.h5"
    nothing = build_dataset(str(smiles_file), str(out), settings, progress=False, stop_after_minutes=0)
    assert nothing.written == [] and nothing.not_started == ["methane", "methylamine", "ethane"] and not out.exists()
    first = build_dataset(str(smiles_file), str(out), settings, progress=False, stop_after_minutes=0.1 / 60)
    assert first.computed == ["methane"] and first.not_started == ["methylamine", "ethane"]
    with h5py.File(out, "r") as handle:
        assert list(handle.keys()) == ["methane"]
    rest = build_dataset(str(smiles_file), str(out), settings, progress=False)
    assert rest.computed == ["methylamine", "ethane"] and rest.not_started == []
    with h5py.File(out, "r") as handle:
        assert sorted(handle.keys()) == ["ethane", "methane", "methylamine"]


@needs_tblite
def test_cli_time_limit_exit_code(tmp_path):
    smiles_file = tmp_path / "mols.smi"
    smiles_file.write_text("C methane\nCC ethane\n")
    command, environment = _cli(str(smiles_file), "-o", str(tmp_path / "mols.h5"), "--labeler", "gfn2", "--no-am1bcc",
                                "--no-progress", "--stop-after-minutes", "0")
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 3, result.stderr
    assert "2 molecules not built yet" in result.stderr and not (tmp_path / "mols.h5").exists()


def test_an_earlier_partial_output_seeds_a_build_elsewhere(tmp_path):
    smiles_file = tmp_path / "in.smi"
    smiles_file.write_text("C methane\nCC ethane\nCCC propane\n")
    settings = BuildSettings(labeler=_HarmonicSpec("gfn2", seconds=0.2),
                             recipe=ConformerRecipe(conformations=2, torsion_points=0), am1bcc=False)
    partial_input = tmp_path / "partial.smi"
    partial_input.write_text("C methane\nCC ethane\nCO methanol\n")  # same ids and SMILES, and one more
    partial = tmp_path / "machine-a" / "out.h5"
    partial.parent.mkdir()
    build_dataset(str(partial_input), str(partial), settings, progress=False)
    # a changed SMILES under an id of the seed file is built again, not taken
    smiles_file.write_text("C methane\nC=C ethane\nCCC propane\n")
    out = tmp_path / "machine-b" / "out.h5"
    out.parent.mkdir()
    report = build_dataset(str(smiles_file), str(out), settings, progress=False, seed_from=(str(partial),))
    assert report.seeded == ["methane"] and report.computed == ["ethane", "propane"]
    with h5py.File(partial, "r") as seed, h5py.File(out, "r") as built:
        assert sorted(built.keys()) == ["ethane", "methane", "propane"]
        for name in ("conformations", "energy/fake", "forces/fake"):
            assert np.array_equal(seed["methane"][name][()], built["methane"][name][()])
    other = BuildSettings(labeler=_HarmonicSpec("gfn2", seconds=0.2),
                          recipe=ConformerRecipe(conformations=3, torsion_points=0), am1bcc=False)
    with pytest.raises(DatasetBuildError, match="builder"):
        build_dataset(str(smiles_file), str(tmp_path / "machine-c.h5"), other, progress=False,
                      seed_from=(str(partial),))


def _cli(*arguments):
    environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    entry = "import sys; from grappa_like.cli import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", entry, "build-dataset", *arguments], environment


@needs_tblite
def test_interrupt_and_resume(tmp_path):
    """SIGKILL after the first part, run again: every molecule once, the finished part untouched."""
    smiles_file = tmp_path / "mols.smi"
    smiles_file.write_text("C methane\nCCCCO butanol\nCCOCCOC glyme\nCC(=O)NC nma\nOCCCCCO pentanediol\n")
    out = tmp_path / "mols.h5"
    parts = Path(str(out) + ".parts")
    arguments = [str(smiles_file), "-o", str(out), "--labeler", "gfn2", "--confs", "6", "--torsion-points", "6",
                 "--max-torsions", "2", "--no-am1bcc", "--no-progress"]
    command, environment = _cli(*arguments)
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    first = None
    while time.monotonic() < deadline and process.poll() is None:
        finished = sorted(parts.glob("*.h5")) if parts.exists() else []
        if finished:
            first = finished[0]
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first is not None, "the builder wrote no part before the deadline"
    assert not out.exists(), "the builder finished before it could be killed: make the molecules slower"
    stat_before = os.stat(first)
    n_before = len(list(parts.glob("*.h5")))
    assert n_before < 5

    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"{5 - n_before} to build" in result.stderr
    stat_after = os.stat(first)
    assert (stat_after.st_ino, stat_after.st_mtime_ns) == (stat_before.st_ino, stat_before.st_mtime_ns)
    with h5py.File(out, "r") as handle:
        assert sorted(handle.keys()) == ["butanol", "glyme", "methane", "nma", "pentanediol"]
    assert sorted(p.name for p in parts.glob("*.h5")) == [f"{m}.h5" for m in
                                                         ("butanol", "glyme", "methane", "nma", "pentanediol")]
    assert not list(parts.glob(".*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    assert len(list(read_records(str(out), ("gfn2",)))) == 5


def test_cli_usage_errors(tmp_path, capsys):
    from grappa_like.cli import main

    assert main(["build-dataset", str(tmp_path / "missing.smi"), "-o", str(tmp_path / "x.h5"),
                 "--labeler", "gfn2"]) == 2
    smiles_file = tmp_path / "in.smi"
    smiles_file.write_text("C methane\n")
    assert main(["build-dataset", str(smiles_file), "-o", str(tmp_path / "x.h5"), "--labeler", "ani2x"]) == 2
    assert main(["build-dataset", str(smiles_file), "-o", str(tmp_path / "x.h5"), "--labeler", "ani2x",
                 "--ani-dir", str(tmp_path)]) == 2
    assert main(["build-dataset", str(smiles_file), "-o", str(tmp_path / "x.h5"), "--labeler", "gfn2",
                 "--confs", "0"]) == 2
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.skipif(not os.path.isdir(ANI_DIR), reason="shared/teachers/ani-2x not present")
def test_ani2x_rejects_what_it_cannot_do(tmp_path):
    pytest.importorskip("torchani")
    smiles_file = tmp_path / "in.smi"
    smiles_file.write_text("C methane\nCP methylphosphine\nC[NH3+] methylammonium\n")
    settings = BuildSettings(labeler=LabelerSpec("ani2x", ani_dir=ANI_DIR),
                             recipe=ConformerRecipe(conformations=3, torsion_points=0), am1bcc=False)
    report = build_dataset(str(smiles_file), str(tmp_path / "ani.h5"), settings, progress=False)
    assert report.written == ["methane"]
    reasons = {f[0]: f[3] for f in report.failures}
    assert "element(s) P" in reasons["methylphosphine"] and "total charge is +1" in reasons["methylammonium"]
    [record] = read_records(str(tmp_path / "ani.h5"), ("ani2x",))
    assert record.energies.mean() / 4.184 / 627.5094740631 == pytest.approx(-40.5, abs=0.1)  # hartree


@needs_tblite
@pytest.mark.skipif(not os.path.isdir(ANI_DIR), reason="shared/teachers/ani-2x not present")
def test_gfn2_everywhere_and_ani2x_where_it_applies(tmp_path):
    """As train-v0: every molecule has gfn2; ani2x only where ANI-2x applies, else <label>_omitted."""
    pytest.importorskip("torchani")
    smiles_file = tmp_path / "in.smi"
    smiles_file.write_text("C methane\nCP methylphosphine\n")
    settings = BuildSettings(labeler=LabelerSpec("gfn2"), extra_labelers=(LabelerSpec("ani2x", ani_dir=ANI_DIR),),
                             recipe=ConformerRecipe(conformations=3, torsion_points=0), am1bcc=False)
    report = build_dataset(str(smiles_file), str(tmp_path / "both.h5"), settings, progress=False)
    assert sorted(report.written) == ["methane", "methylphosphine"] and not report.failures
    with h5py.File(tmp_path / "both.h5", "r") as handle:
        assert {"level_of_theory.gfn2", "level_of_theory.ani2x"} <= set(handle.attrs)
        assert sorted(handle["methane/energy"]) == ["ani2x", "gfn2"]
        assert sorted(handle["methylphosphine/energy"]) == ["gfn2"]
        assert "element(s) P" in handle["methylphosphine"].attrs["ani2x_omitted"]
    labels = {r.mol_id: r.label for r in read_records(str(tmp_path / "both.h5"))}
    assert labels == {"methane": "ani2x", "methylphosphine": "gfn2"}


def test_pyscf_smoke(tmp_path):
    """DFT at a tiny basis on water through the builder; forces checked by a finite difference."""
    pytest.importorskip("pyscf")
    from grappa_like.labelers import PySCFLabeler

    try:
        import pyscf.dispersion  # noqa: F401
        method = "b3lyp-d3bj/sto-3g"
    except ImportError:
        method = "b3lyp/sto-3g"
    smiles_file = tmp_path / "in.smi"
    smiles_file.write_text("O water\n")
    settings = BuildSettings(labeler=LabelerSpec("pyscf", pyscf_method=method),
                             recipe=ConformerRecipe(conformations=2, torsion_points=0), am1bcc=False)
    report = build_dataset(str(smiles_file), str(tmp_path / "dft.h5"), settings, progress=False)
    assert report.written == ["water"] and not report.failures
    with h5py.File(tmp_path / "dft.h5", "r") as handle:
        assert "sto-3g" in handle.attrs["level_of_theory.dft"] and "pyscf" in handle.attrs["level_of_theory.dft"]
        positions = handle["water/conformations"][1].astype(np.float64)
        forces = handle["water/forces/dft"][1].astype(np.float64)
        energies = handle["water/energy/dft"][:]
    assert energies.mean() / 627.5094740631 == pytest.approx(-75.3, abs=0.1)  # B3LYP/STO-3G water, hartree
    labeler = PySCFLabeler(method)
    numbers = np.array([8, 1, 1])
    step = 2e-3
    plus, minus = positions.copy(), positions.copy()
    plus[1, 1] += step
    minus[1, 1] -= step
    derivative = (labeler.single_point(numbers, plus, 0)[0] - labeler.single_point(numbers, minus, 0)[0]) / (2 * step)
    assert -derivative == pytest.approx(forces[1, 1], abs=0.05 + 0.01 * abs(derivative))


def test_build_molecule_records_stereo_choice():
    labeler = _FlakyLabeler()
    labeler.calls = -100  # no failure in this test
    task = MoleculeTask("x", "x", mapped_smiles(_mol("CC(F)Cl")))
    group = build_molecule(task, BuildSettings(labeler=_FlakySpec("gfn2"), recipe=ConformerRecipe(
        conformations=2, torsion_points=0), am1bcc=False), labeler)
    assert "stereo_note" in group["attrs"] and "@" in group["attrs"]["smiles"]
    with pytest.raises(errors.MoleculeInputError):
        build_molecule(MoleculeTask("y", "y", "[SiH4]"), BuildSettings(labeler=_FlakySpec("gfn2")), labeler)


@needs_tblite
def test_md_on_the_labeler_surface(tmp_path):
    smiles_file = tmp_path / "in.smi"
    smiles_file.write_text("O water\n")
    recipe = ConformerRecipe(conformations=3, torsion_points=0, md_surface="labeler")
    settings = BuildSettings(labeler=LabelerSpec("gfn2"), recipe=recipe, am1bcc=False)
    report = build_dataset(str(smiles_file), str(tmp_path / "md.h5"), settings, progress=False)
    assert report.written == ["water"]
    with h5py.File(tmp_path / "md.h5", "r") as handle:
        assert handle["water"].attrs["conformation_kinds"] == "min,md150,md350"
        assert '"md_surface": "labeler"' in handle.attrs["builder"]


@needs_tblite
def test_parallel_workers_give_the_same_file(tmp_path):
    smiles_file = tmp_path / "in.smi"
    smiles_file.write_text(MOLECULES)
    settings = BuildSettings(labeler=LabelerSpec("gfn2"), recipe=SMALL, am1bcc=False)
    serial = build_dataset(str(smiles_file), str(tmp_path / "serial.h5"), settings, progress=False)
    parallel = build_dataset(str(smiles_file), str(tmp_path / "parallel.h5"), settings, workers=2, progress=False)
    assert sorted(serial.written) == sorted(parallel.written) == ["ethanol", "methane", "water"]
    assert [f[0] for f in parallel.failures] == ["silane"]
    with h5py.File(tmp_path / "serial.h5", "r") as one, h5py.File(tmp_path / "parallel.h5", "r") as two:
        for mol_id in serial.written:  # seeds depend on the molecule, not on the worker or the order
            np.testing.assert_array_equal(one[mol_id]["conformations"][:], two[mol_id]["conformations"][:])
            np.testing.assert_allclose(one[mol_id]["energy/gfn2"][:], two[mol_id]["energy/gfn2"][:], rtol=1e-10)


# --------------------------------------------------------------------------- v3 recipe options (issue 17)

V1_RECIPE_FIELDS = {
    "conformations", "max_minima", "max_minima_rigid", "embeddings", "prune_rms", "distinct_rmsd", "temperatures",
    "single_minimum_temperatures", "timestep_fs", "friction_per_ps", "equilibration_fs", "snapshot_interval_fs",
    "md_surface", "torsion_points", "max_torsions", "torsion_force_constant", "max_energy_above_lowest",
    "min_distance"}


def test_default_recipe_records_what_v1_builds_recorded(tmp_path):
    """New options at their defaults are left out of settings.json, so v1 parts folders resume."""
    assert set(ConformerRecipe().settings_dict()) == V1_RECIPE_FIELDS
    assert ConformerRecipe(md_temperatures=[500, 800]).settings_dict()["md_temperatures"] == (500.0, 800.0)
    smiles_file = tmp_path / "in.smi"
    smiles_file.write_text("C methane\n")
    settings = BuildSettings(labeler=_HarmonicSpec("gfn2"), recipe=ConformerRecipe(conformations=2, torsion_points=0),
                             am1bcc=False)
    build_dataset(str(smiles_file), str(tmp_path / "out.h5"), settings, progress=False)
    recorded = json.loads((tmp_path / "out.h5.parts" / "settings.json").read_text())
    assert {key.split(".", 1)[1] for key in recorded if key.startswith("recipe.")} == V1_RECIPE_FIELDS
    hotter = BuildSettings(labeler=_HarmonicSpec("gfn2"), am1bcc=False, recipe=ConformerRecipe(
        conformations=2, torsion_points=0, md_temperatures=(800,)))
    with pytest.raises(DatasetBuildError, match="recipe.md_temperatures"):
        build_dataset(str(smiles_file), str(tmp_path / "out.h5"), hotter, progress=False)
    with pytest.raises(ValueError, match="md_temperatures"):
        ConformerRecipe(md_temperatures=(0.0,))


def _mmff(mol, positions):
    """MMFF94 force field of ``mol`` (evaluate it at any positions with CalcEnergy / CalcGrad)."""
    from rdkit.Chem import AllChem

    from grappa_like.molecule import with_positions

    return AllChem.MMFFGetMoleculeForceField(with_positions(mol, positions), AllChem.MMFFGetMoleculeProperties(mol))


def _mmff_energies(mol, positions):
    force_field = _mmff(mol, positions[0])
    return np.array([force_field.CalcEnergy(p.ravel().tolist()) for p in positions])


def test_md_temperatures_one_trajectory_each():
    mol = _mol("CCO")
    recipe = ConformerRecipe(conformations=13, max_minima=1, torsion_points=0, md_temperatures=(100, 800))
    conformations = generate_conformations(mol, recipe, seed=3)
    assert conformations.kinds == ["min"] + ["md100"] * 6 + ["md800"] * 6
    energies = _mmff_energies(mol, conformations.positions) - _mmff_energies(mol, conformations.positions[:1])[0]
    assert energies[7:].mean() > 3 * energies[1:7].mean()  # the temperature is the one asked for


def test_an_unstable_md_trajectory_costs_only_its_snapshots(monkeypatch):
    import grappa_like.dataset as dataset_module

    original = dataset_module.langevin_snapshots

    def unstable_when_hot(positions, masses, energy_and_forces, temperature, *rest):
        if temperature > 500:
            raise ConformerError(f"MD at {temperature:g} K became unstable (non-finite positions)")
        return original(positions, masses, energy_and_forces, temperature, *rest)

    monkeypatch.setattr(dataset_module, "langevin_snapshots", unstable_when_hot)
    recipe = ConformerRecipe(conformations=13, max_minima=1, torsion_points=0, md_temperatures=(100, 800))
    conformations = generate_conformations(_mol("CCO"), recipe, seed=3)
    assert conformations.kinds == ["min"] + ["md100"] * 6
    assert conformations.md_omitted == ["6 snapshots: MD at 800 K became unstable (non-finite positions)"]
    task = MoleculeTask("ethanol", "ethanol", mapped_smiles(_mol("CCO")))
    settings = BuildSettings(labeler=_HarmonicSpec("gfn2"), recipe=recipe, am1bcc=False)
    group = build_molecule(task, settings, [("fake", _HarmonicSpec("gfn2").make())])
    assert group["attrs"]["md_omitted"] == conformations.md_omitted[0]
    assert group["attrs"]["conformation_kinds"] == ",".join(["min"] + ["md100"] * 6)


def test_unminimised_etkdg_conformers():
    mol = _mol("CCO")
    recipe = ConformerRecipe(conformations=2, torsion_points=0, etkdg_conformations=3)
    conformations = generate_conformations(mol, recipe, seed=3)
    assert conformations.kinds == ["min", "md150", "etkdg", "etkdg", "etkdg"]
    force_field = _mmff(mol, conformations.positions[0])
    largest = [np.abs(force_field.CalcGrad(p.ravel().tolist())).max() for p in conformations.positions]
    assert largest[0] < 0.1 and min(largest[2:]) > 1.0  # kcal/mol/Å: the minimum is minimised, ETKDG rows are not


@pytest.mark.parametrize("smiles, dihedral, name", [
    ("CC(=O)NC", (2, 1, 3, 4), "amide"), ("CC(=S)NC", (2, 1, 3, 4), "thioamide"),
    ("CC(=O)OC", (2, 1, 3, 4), "ester"), ("c1ccccc1-c1ccccc1", (0, 5, 6, 7), "aryl-aryl"),
    ("C=CC=C", (0, 1, 2, 3), "conjugated")])
def test_conjugated_bond_classes(smiles, dihedral, name):
    assert conjugated_drives(_mol(smiles), 3) == [(dihedral, name)]


def test_conjugated_drives_add_the_bonds_the_ranking_leaves_out():
    from rdkit.Chem import rdMolTransforms

    mol = _mol("CCCC(=O)NC")  # with one rotatable drive the C-C bond is taken, not the amide
    assert conjugated_drives(mol, 2) == [((4, 3, 5, 6), "amide")]
    assert conjugated_drives(_mol("CS(=O)(=O)c1ccccc1"), 2) == []  # sulfonyl: not conjugated
    recipe = ConformerRecipe(conformations=1, torsion_points=4, max_torsions=1, conjugated_torsions=1)
    conformations = generate_conformations(mol, recipe, seed=1)
    driven = sorted({kind.split(":")[1] for kind in conformations.kinds if kind.startswith("torsion:")})
    assert driven == ["0-1-2-3", "4-3-5-6"]
    work = Chem.Mol(mol)
    work.RemoveAllConformers()
    for xyz, kind in zip(conformations.positions, conformations.kinds):
        if kind.startswith("torsion:4-3-5-6"):
            conformer = Chem.Conformer(work.GetNumAtoms())
            for index, point in enumerate(xyz):
                conformer.SetAtomPosition(index, point.tolist())
            angle = rdMolTransforms.GetDihedralDeg(conformer, 4, 3, 5, 6)
            assert abs((angle - float(kind.split(":")[2]) + 180) % 360 - 180) < 2.0  # cis, trans and both 90°


def _springs(pairs, k=1000.0, r0=1.0):
    """Energy and forces (kcal/mol, Å) of harmonic springs between atom pairs."""
    def energy_and_forces(positions):
        forces = np.zeros_like(positions)
        energy = 0.0
        for i, j in pairs:
            vector = positions[i] - positions[j]
            r = np.linalg.norm(vector)
            energy += 0.5 * k * (r - r0) ** 2
            forces[i] -= k * (r - r0) * vector / r
            forces[j] += k * (r - r0) * vector / r
        return energy, forces
    return energy_and_forces


def test_hessian_modes_and_harmonic_samples():
    from grappa_like.dataset import (BOLTZMANN_KCAL_PER_MOL_K, finite_difference_hessian, normal_mode_samples,
                                     relax_on_surface, vibrational_modes)

    triangle = _springs([(0, 1), (1, 2), (0, 2)])
    start = np.array([[0.0, 0.0, 0.0], [1.2, 0.1, 0.0], [0.4, 0.8, 0.1]])
    minimum, energy, converged = relax_on_surface(start, triangle)
    assert converged and energy < 1e-4
    batch = lambda conformations: np.array([triangle(p)[1] for p in conformations])  # noqa: E731
    masses = np.array([16.0, 1.0, 1.0])
    eigenvalues, modes = vibrational_modes(minimum, masses, finite_difference_hessian(minimum, batch))
    assert len(eigenvalues) == 3 and eigenvalues.min() > 100.0  # 3N - 6 vibrations, rigid motions projected out
    np.testing.assert_allclose(modes.T @ modes, np.eye(3), atol=1e-10)
    dumbbell = _springs([(0, 1)])
    line = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    [stretch], _ = vibrational_modes(line, np.array([12.0, 16.0]), finite_difference_hessian(
        line, lambda c: np.array([dumbbell(p)[1] for p in c])))
    assert stretch == pytest.approx(1000.0 / (12.0 * 16.0 / 28.0), rel=1e-4)  # k / reduced mass, 3N - 5 = 1 mode
    samples = normal_mode_samples(minimum, masses, finite_difference_hessian(minimum, batch), (300.0, 600.0), 4000,
                                  np.random.default_rng(0))
    for temperature in (300.0, 600.0):  # equipartition: kT/2 of potential energy per vibration
        energies = [triangle(xyz)[0] for xyz, t in samples if t == temperature]
        assert np.mean(energies) == pytest.approx(1.5 * BOLTZMANN_KCAL_PER_MOL_K * temperature, rel=0.08)


@needs_tblite
def test_normal_modes_on_the_labeler_surface_through_the_cli(tmp_path):
    from grappa_like.cli import main

    smiles_file = tmp_path / "in.smi"
    smiles_file.write_text("CC(=O)NC nma\nC[NH3+] methylammonium\n")
    out = tmp_path / "v3.h5"
    code = main(["build-dataset", str(smiles_file), "-o", str(out), "--labeler", "gfn2", "--no-am1bcc",
                 "--confs", "3", "--md-temperatures", "500,800", "--etkdg-confs", "1", "--torsion-points", "4",
                 "--max-torsions", "0", "--conjugated-torsions", "1", "--normal-mode-confs", "2", "--no-progress",
                 "--max-energy-above-lowest", "400"])
    assert code == 0
    with h5py.File(out, "r") as handle:
        nma, cation = handle["nma"], handle["methylammonium"]
        kinds = nma.attrs["conformation_kinds"].split(",")
        assert kinds[:4] == ["min", "md500", "md800", "etkdg"]
        assert [k.rsplit(":", 1)[0] for k in kinds[4:8]] == ["torsion:2-1-3-4"] * 4
        assert kinds[8:] == ["labeler_min", "nm300", "nm450"]
        assert np.abs(nma["forces/gfn2"][8]).max() < 0.1  # kcal/mol/Å: the labeler's own minimum
        energies = nma["energy/gfn2"][:]
        assert energies[[5, 7]].min() - energies[8] > 10.0  # amide at ±90°: the barrier is in the data
        assert "normal_modes_omitted" in cation.attrs and "labeler_min" not in cation.attrs["conformation_kinds"]
        recipe = json.loads(handle.attrs["builder"])["recipe"]
        assert recipe["md_temperatures"] == [500.0, 800.0] and recipe["max_energy_above_lowest"] == 400.0
    with pytest.raises(SystemExit) as usage:
        main(["build-dataset", str(smiles_file), "-o", str(tmp_path / "x.h5"), "--labeler", "gfn2",
              "--md-temperatures", "hot"])
    assert usage.value.code == 2
    assert main(["build-dataset", str(smiles_file), "-o", str(tmp_path / "x.h5"), "--labeler", "gfn2",
                 "--md-temperatures", "3000"]) == 2  # outside (0, 2000] K
    assert main(["build-dataset", str(smiles_file), "-o", str(tmp_path / "x.h5"), "--labeler", "gfn2",
                 "--max-energy-above-lowest", "0"]) == 2


def test_label_preference_per_family(tmp_path):
    """Peptides take GFN2 labels, other molecules ANI-2x where present; v2's order is still available."""
    from grappa_like.cli.train import DEFAULT_LABELS
    from grappa_like.data import (DEFAULT_LABEL_PREFERENCE, V2_LABEL_PREFERENCE, DataSpec, labels_for_subset,
                                  parse_data_spec)

    assert DEFAULT_LABELS == ",".join(DEFAULT_LABEL_PREFERENCE)
    assert labels_for_subset(DEFAULT_LABEL_PREFERENCE, "dipeptide") == ("gfn2", "ani2x")
    assert labels_for_subset(DEFAULT_LABEL_PREFERENCE, "capped_residue") == ("gfn2", "ani2x")
    assert labels_for_subset(DEFAULT_LABEL_PREFERENCE, "druglike") == ("ani2x", "gfn2")
    path = tmp_path / "both.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs["layout"] = LAYOUT
        for mol_id, subset, labels in [("pep", "dipeptide", ("ani2x", "gfn2")), ("drug", "druglike", ("ani2x", "gfn2")),
                                       ("pep_ani", "peptide_drives", ("ani2x",))]:
            group = handle.create_group(mol_id)
            group.attrs.update(smiles=mapped_smiles(_mol("C")), name=mol_id, subset=subset, total_charge=0)
            group["atomic_numbers"] = np.array([6, 1, 1, 1, 1], dtype=np.int8)
            group["conformations"] = np.zeros((1, 5, 3), dtype=np.float32)
            for label in labels:
                group[f"energy/{label}"] = np.zeros(1)
    assert {r.mol_id: r.label for r in read_records(str(path))} == {"pep": "gfn2", "drug": "ani2x", "pep_ani": "ani2x"}
    assert {r.label for r in read_records(str(path), V2_LABEL_PREFERENCE)} == {"ani2x"}
    spec = parse_data_spec("x.h5:*peptide*=gfn2/ani2x,ani2x:2")
    assert spec == DataSpec("x.h5", ("*peptide*=gfn2/ani2x", "ani2x"), 2.0)
    assert {r.mol_id: r.label for r in read_records(str(path), spec.labels)} == {
        "pep": "gfn2", "drug": "ani2x", "pep_ani": "ani2x"}
    with pytest.raises(ValueError, match="SUBSETS=LABEL"):
        parse_data_spec("x.h5:dipeptide=")


def test_a_labeler_failure_while_sampling_normal_modes_is_recorded():
    labeler = _FlakyLabeler()  # fails on its third call: inside the labeler minimisation
    task = MoleculeTask("methane", "methane", mapped_smiles(_mol("C")))
    recipe = ConformerRecipe(conformations=1, torsion_points=0, normal_mode_conformations=2)
    group = build_molecule(task, BuildSettings(labeler=_FlakySpec("gfn2"), recipe=recipe, am1bcc=False), labeler)
    assert "SCF not converged (on purpose)" in group["attrs"]["normal_modes_omitted"]
    assert group["attrs"]["conformation_kinds"] == "min"


def test_labeler_surface_batches_keep_the_row_order():
    from grappa_like.dataset import _LabelerSurface

    labeler = _HarmonicSpec("gfn2").make()
    surface = _LabelerSurface(labeler, np.array([6, 1]), 0)
    conformations = np.random.default_rng(1).normal(size=(7, 2, 3))
    expected = np.array([_harmonic(p)[1] for p in conformations])
    np.testing.assert_array_equal(surface.forces_of_batch(conformations, chunk=3), expected)


def _datasets(path) -> dict:
    with h5py.File(path, "r") as handle:
        found = {}
        handle.visititems(lambda name, item: found.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
        return found


def test_build_on_a_dask_cluster_equals_the_local_build_and_resumes(tmp_path):
    distributed = pytest.importorskip("distributed")
    smiles_file = tmp_path / "in.smi"
    smiles_file.write_text("CCO ethanol\nCC(=O)N acetamide\nC1CC1 cyclopropane\n")
    settings = BuildSettings(labeler=_HarmonicSpec("gfn2"), recipe=ConformerRecipe(conformations=3, torsion_points=4),
                             am1bcc=False)
    local = build_dataset(str(smiles_file), str(tmp_path / "local.h5"), settings, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = build_dataset(str(smiles_file), str(tmp_path / "dask.h5"), settings, client=client, progress=False)
        assert sorted(remote.computed) == sorted(local.computed) == ["acetamide", "cyclopropane", "ethanol"]
        ours, theirs = _datasets(tmp_path / "local.h5"), _datasets(tmp_path / "dask.h5")
        assert ours.keys() == theirs.keys()
        for name in ours:
            np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
        os.remove(tmp_path / "dask.h5.parts" / "ethanol.h5")  # as if the run had stopped before ethanol
        again = build_dataset(str(smiles_file), str(tmp_path / "dask.h5"), settings, client=client, progress=False)
        assert again.computed == ["ethanol"]
