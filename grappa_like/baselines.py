"""Classical GAFF2 + AM1-BCC baseline through AmberTools, for evaluation and benchmarks only.

Needs the AmberTools executables antechamber, parmchk2, tleap (and sqm for AM1-BCC), e.g. from
``pip install "grappa_like[data]"``. Nothing here is needed to parameterize molecules with the model.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import openmm
import openmm.app
from rdkit import Chem

DEFAULT_TIMEOUT_S = 600.0
OUTPUT_TAIL_LINES = 30
RESIDUE_NAME = "MOL"
INSTALL_HINT = 'pip install "grappa_like[data]"'
PRMTOP_TOOLS = ("parmchk2", "tleap")
AM1BCC_TOOLS = ("antechamber", "sqm", *PRMTOP_TOOLS)


class AmberToolsNotFoundError(ImportError):
    """Raised when an AmberTools executable (antechamber, parmchk2, tleap, sqm) cannot be found."""


class AmberToolsError(RuntimeError):
    """Raised when an AmberTools run fails; the message names the molecule, the tool and its output tail."""


def find_ambertools_executable(tool: str) -> str:
    """Return the path of the AmberTools executable `tool`, searched on PATH and next to sys.executable."""
    found = shutil.which(tool)
    if found is None:
        found = shutil.which(tool, path=str(Path(sys.executable).parent))
    if found is None:
        raise AmberToolsNotFoundError(
            f"AmberTools executable '{tool}' not found on PATH or next to {sys.executable}; "
            f"install it with: {INSTALL_HINT}"
        )
    return found


def ambertools_available() -> bool:
    """Return True if antechamber, parmchk2, tleap and sqm can all be found."""
    try:
        _require_tools(AM1BCC_TOOLS)
    except AmberToolsNotFoundError:
        return False
    return True


def _require_tools(tools: Sequence[str]) -> None:
    """Raise AmberToolsNotFoundError unless every tool in `tools` can be found."""
    for tool in tools:
        find_ambertools_executable(tool)


def gaff2_system_from_types(
    mol: Chem.Mol,
    gaff2_types: Sequence[str],
    charges: Sequence[float],
    name: str = "mol",
    workdir: str | os.PathLike | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> openmm.System:
    """Build a GAFF2 openmm.System (no cutoff, no constraints) from an RDKit mol with explicit H and a conformer (Å), GAFF2 types and partial charges (e), atom order kept."""
    if len(gaff2_types) != mol.GetNumAtoms() or len(charges) != mol.GetNumAtoms():
        raise ValueError(
            f"molecule '{name}' has {mol.GetNumAtoms()} atoms but got {len(gaff2_types)} types "
            f"and {len(charges)} charges"
        )
    _require_tools(PRMTOP_TOOLS)
    with _working_directory(workdir) as directory:
        prmtop_path = _build_prmtop(mol, gaff2_types, charges, name, directory, timeout_s)
        return _system_from_prmtop(prmtop_path, mol, name)


def gaff2_am1bcc_charges_and_types(
    mol: Chem.Mol,
    total_charge: int | None = None,
    name: str = "mol",
    workdir: str | os.PathLike | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    optimize_geometry: bool = True,
) -> tuple[np.ndarray, list[str]]:
    """Run antechamber (AM1-BCC, GAFF2 types) on an RDKit mol with explicit H and a conformer (Å); return (charges in e, shape (n_atoms,); GAFF2 types), in RDKit atom order.

    ``optimize_geometry=False`` runs AM1 as a single point at the given conformer (sqm maxcyc=0),
    as train-v0 did: 10-100× faster, charges within ~0.1 e of the default route.
    """
    _require_tools(("antechamber", "sqm"))
    if total_charge is None:
        total_charge = Chem.GetFormalCharge(mol)
    with _working_directory(workdir) as directory:
        return _run_antechamber(mol, total_charge, name, directory, timeout_s, optimize_geometry)


def gaff2_am1bcc_system(
    mol: Chem.Mol,
    total_charge: int | None = None,
    name: str = "mol",
    workdir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> openmm.System:
    """Build the GAFF2 + AM1-BCC openmm.System (no cutoff, no constraints) for an RDKit mol with explicit H and a conformer (Å), atom order kept; prmtops are reused from cache_dir if given."""
    if total_charge is None:
        total_charge = Chem.GetFormalCharge(mol)
    cached_prmtop = None
    if cache_dir is not None:
        cached_prmtop = Path(cache_dir) / f"{_cache_key(mol, total_charge)}.prmtop"
        if cached_prmtop.is_file():
            return _system_from_prmtop(cached_prmtop, mol, name)
    _require_tools(AM1BCC_TOOLS)
    with _working_directory(workdir) as directory:
        charges, gaff2_types = _run_antechamber(mol, total_charge, name, directory, timeout_s)
        prmtop_path = _build_prmtop(mol, gaff2_types, charges, name, directory, timeout_s)
        system = _system_from_prmtop(prmtop_path, mol, name)
        if cached_prmtop is not None:
            _atomic_copy(prmtop_path, cached_prmtop)
        return system


@contextlib.contextmanager
def _working_directory(workdir: str | os.PathLike | None) -> Iterator[Path]:
    """Yield `workdir` (created, kept) or a temporary directory that is removed afterwards."""
    if workdir is not None:
        path = Path(workdir)
        path.mkdir(parents=True, exist_ok=True)
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix="grappa_like_amber_") as temporary:
            yield Path(temporary)


def _atom_names(mol: Chem.Mol) -> list[str]:
    """Unique atom names: element symbol plus a per-element counter (C1, C2, H1, ...)."""
    counts: dict[str, int] = {}
    names = []
    for atom in mol.GetAtoms():
        symbol = atom.GetSymbol()
        counts[symbol] = counts.get(symbol, 0) + 1
        names.append(f"{symbol}{counts[symbol]}")
    return names


def _write_mol2(
    mol: Chem.Mol,
    path: Path,
    atom_types: Sequence[str],
    charges: Sequence[float],
    name: str,
) -> None:
    """Write a Tripos mol2 file with the given atom types and charges (e), in RDKit atom order."""
    if mol.GetNumConformers() == 0:
        raise ValueError(f"molecule '{name}' has no conformer")
    positions = mol.GetConformer().GetPositions()
    kekulized = Chem.Mol(mol)
    Chem.Kekulize(kekulized, clearAromaticFlags=True)
    molecule_title = "".join(c if c.isalnum() or c in "_-." else "_" for c in name) or "mol"
    lines = [
        "@<TRIPOS>MOLECULE",
        molecule_title,
        f"{mol.GetNumAtoms()} {mol.GetNumBonds()} 1 0 0",
        "SMALL",
        "USER_CHARGES",
        "",
        "@<TRIPOS>ATOM",
    ]
    for index, (atom_name, atom_type, charge) in enumerate(zip(_atom_names(mol), atom_types, charges)):
        x, y, z = positions[index]
        lines.append(
            f"{index + 1} {atom_name} {x:.4f} {y:.4f} {z:.4f} {atom_type} 1 {RESIDUE_NAME} {float(charge):.10f}"
        )
    lines.append("@<TRIPOS>BOND")
    for bond in kekulized.GetBonds():
        order = int(bond.GetBondTypeAsDouble())
        lines.append(f"{bond.GetIdx() + 1} {bond.GetBeginAtomIdx() + 1} {bond.GetEndAtomIdx() + 1} {order}")
    lines += ["@<TRIPOS>SUBSTRUCTURE", f"1 {RESIDUE_NAME} 1 TEMP 0 **** **** 0 ROOT"]
    path.write_text("\n".join(lines) + "\n")


def _read_mol2_atoms(path: Path) -> list[tuple[str, str, float]]:
    """Return (atom name, atom type, charge in e) for each atom of a Tripos mol2 file."""
    atoms = []
    in_atom_section = False
    for line in path.read_text().splitlines():
        if line.startswith("@<TRIPOS>"):
            in_atom_section = line.strip() == "@<TRIPOS>ATOM"
            continue
        fields = line.split()
        if in_atom_section and len(fields) >= 9:
            atoms.append((fields[1], fields[5], float(fields[8])))
    return atoms


def _tool_environment(executable: str) -> dict[str, str]:
    """Environment for AmberTools runs: the tool's directory first on PATH, OMP_NUM_THREADS=1 unless set."""
    environment = dict(os.environ)
    environment["PATH"] = os.pathsep.join([str(Path(executable).parent), environment.get("PATH", "")])
    environment.setdefault("OMP_NUM_THREADS", "1")
    return environment


def _output_tail(text: str) -> str:
    """Last OUTPUT_TAIL_LINES lines of a tool's output."""
    return "\n".join(text.strip().splitlines()[-OUTPUT_TAIL_LINES:])


def _run_tool(
    tool: str,
    arguments: Sequence[str],
    directory: Path,
    name: str,
    expected_output: Path,
    timeout_s: float,
    extra_log: Path | None = None,
) -> None:
    """Run an AmberTools executable in `directory`; raise AmberToolsError unless it succeeds and writes `expected_output`."""
    executable = find_ambertools_executable(tool)
    # A session of its own, so that a timeout also ends children such as the sqm run started by antechamber.
    with subprocess.Popen(
        [executable, *arguments],
        cwd=directory,
        env=_tool_environment(executable),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
        except BaseException as error:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            if isinstance(error, subprocess.TimeoutExpired):
                raise AmberToolsError(f"{tool} timed out after {timeout_s:g} s for molecule '{name}'") from error
            raise
    produced_output = expected_output.is_file() and expected_output.stat().st_size > 0
    if process.returncode == 0 and produced_output:
        return
    message = (
        f"{tool} failed for molecule '{name}' (exit code {process.returncode}"
        f"{'' if produced_output else f', no {expected_output.name} written'}); output tail:\n"
        f"{_output_tail(stdout + stderr)}"
    )
    if extra_log is not None and extra_log.is_file():
        message += f"\n{extra_log.name} tail:\n{_output_tail(extra_log.read_text(errors='replace'))}"
    raise AmberToolsError(message)


def _run_antechamber(
    mol: Chem.Mol, total_charge: int, name: str, directory: Path, timeout_s: float, optimize_geometry: bool = True
) -> tuple[np.ndarray, list[str]]:
    """Run antechamber -c bcc -at gaff2 in `directory`; return (charges in e, GAFF2 types) in RDKit atom order."""
    input_mol2 = directory / "antechamber_input.mol2"
    output_mol2 = directory / "antechamber_output.mol2"
    elements = [atom.GetSymbol() for atom in mol.GetAtoms()]
    _write_mol2(mol, input_mol2, elements, [0.0] * mol.GetNumAtoms(), name)
    arguments = [
        "-fi", "mol2", "-i", input_mol2.name,
        "-fo", "mol2", "-o", output_mol2.name,
        "-c", "bcc", "-at", "gaff2", "-nc", str(int(total_charge)),
        "-pf", "y", "-an", "n",
    ]
    if not optimize_geometry:
        arguments += ["-ek", "qm_theory='AM1', maxcyc=0"]
    _run_tool("antechamber", arguments, directory, name, output_mol2, timeout_s, extra_log=directory / "sqm.out")
    atoms = _read_mol2_atoms(output_mol2)
    if [atom_name for atom_name, _, _ in atoms] != _atom_names(mol):
        raise AmberToolsError(f"antechamber changed the atom order or names of molecule '{name}'")
    charges = np.array([charge for _, _, charge in atoms], dtype=float)
    return charges, [atom_type for _, atom_type, _ in atoms]


def _build_prmtop(
    mol: Chem.Mol,
    gaff2_types: Sequence[str],
    charges: Sequence[float],
    name: str,
    directory: Path,
    timeout_s: float,
) -> Path:
    """Write mol2, run parmchk2 (GAFF2 set) and tleap (leaprc.gaff2) in `directory`; return the prmtop path."""
    mol2_path = directory / "typed.mol2"
    frcmod_path = directory / "typed.frcmod"
    prmtop_path = directory / "typed.prmtop"
    leap_input = directory / "tleap.in"
    _write_mol2(mol, mol2_path, gaff2_types, charges, name)
    # "-s 2" rather than "-s gaff2": parmchk2 (AmberTools 26) compares an unterminated lower-cased copy of
    # "gaff2", so in about a third of the runs it silently falls back to GAFF1 parameters.
    parmchk2_arguments = ["-i", mol2_path.name, "-f", "mol2", "-o", frcmod_path.name, "-s", "2"]
    _run_tool("parmchk2", parmchk2_arguments, directory, name, frcmod_path, timeout_s)
    leap_input.write_text(
        "source leaprc.gaff2\n"
        f"{RESIDUE_NAME} = loadmol2 {mol2_path.name}\n"
        f"loadamberparams {frcmod_path.name}\n"
        f"saveamberparm {RESIDUE_NAME} {prmtop_path.name} typed.inpcrd\n"
        "quit\n"
    )
    _run_tool("tleap", ["-f", leap_input.name], directory, name, prmtop_path, timeout_s)
    return prmtop_path


def _system_from_prmtop(prmtop_path: Path, mol: Chem.Mol, name: str) -> openmm.System:
    """Create the openmm.System from a prmtop after checking it matches the atom count and element order of `mol`."""
    prmtop = openmm.app.AmberPrmtopFile(str(prmtop_path))
    prmtop_elements = [atom.element.atomic_number if atom.element else None for atom in prmtop.topology.atoms()]
    mol_elements = [atom.GetAtomicNum() for atom in mol.GetAtoms()]
    if prmtop_elements != mol_elements:
        raise AmberToolsError(
            f"prmtop for molecule '{name}' does not match its atoms: {len(prmtop_elements)} atoms "
            f"with atomic numbers {prmtop_elements}, expected {len(mol_elements)} atoms {mol_elements}"
        )
    return prmtop.createSystem(nonbondedMethod=openmm.app.NoCutoff, constraints=None, rigidWater=False)


def _cache_key(mol: Chem.Mol, total_charge: int) -> str:
    """sha256 of the atom-mapped isomeric SMILES (map number = index + 1) and the total charge."""
    mapped = Chem.Mol(mol)
    for atom in mapped.GetAtoms():
        atom.SetAtomMapNum(atom.GetIdx() + 1)
    mapped_smiles = Chem.MolToSmiles(mapped, isomericSmiles=True)
    return hashlib.sha256(f"gaff2-am1bcc|{mapped_smiles}|{int(total_charge)}".encode()).hexdigest()


def _atomic_copy(source: Path, destination: Path) -> None:
    """Copy `source` to `destination` through a temporary file and os.replace, so no half-written file appears."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    file_descriptor, temporary_name = tempfile.mkstemp(dir=destination.parent, suffix=".tmp")
    os.close(file_descriptor)
    try:
        shutil.copyfile(source, temporary_name)
        os.replace(temporary_name, destination)
    except BaseException:
        os.unlink(temporary_name)
        raise
