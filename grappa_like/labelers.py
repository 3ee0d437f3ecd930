"""QM labelers for the dataset builder: energies and forces of conformations at one level of theory.

Three labelers, each named by the label it writes into a ``grappa_like-qm-v1`` file:

- ``gfn2``: GFN2-xTB through tblite (any element tblite knows, any total charge, closed shell).
- ``ani2x``: the ANI-2x neural network through torchani, with the NeuroChem parameter files from a
  folder the user gives (neutral molecules of H C N O F S Cl only; no zwitterions).
- ``dft`` (``--labeler pyscf``): Kohn-Sham DFT through pyscf with density fitting, e.g.
  ``b3lyp-d3bj/def2-svp``; meant for small, high-quality sets.

Every labeler takes atomic numbers, positions in Å and the total charge and returns energies in
kcal/mol and forces (= -gradient) in kcal/mol/Å, the units of the data files. The heavy libraries
are imported only when a labeler is made, so importing this module costs nothing.
"""

from __future__ import annotations

import importlib.metadata
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grappa_like import errors
from grappa_like.units import BOHR_TO_ANGSTROM, HARTREE_TO_KCAL

INSTALL_HINT = 'pip install "grappa_like[data]"'
LABELER_NAMES = ("gfn2", "ani2x", "pyscf")
DEFAULT_PYSCF_METHOD = "b3lyp-d3bj/def2-svp"
ANI2X_ELEMENTS = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F", 16: "S", 17: "Cl"}
DISPERSION_SUFFIXES = ("d3bj", "d3zero", "d3", "d4")


class LabelerError(errors.GrappaLikeError):
    """Base class of the labelers' errors."""


class LabelerRejectedError(LabelerError, ValueError):
    """The molecule lies outside what the labeler can do (an element, the total charge, a zwitterion)."""


class LabelerFailedError(LabelerError, RuntimeError):
    """The labeler ran but failed on one conformation (e.g. the SCF did not converge)."""


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def _missing(package: str, labeler: str, error: ImportError) -> errors.MissingDependencyError:
    return errors.MissingDependencyError(
        f"the {labeler} labeler needs the Python package '{package}' ({error}); install it with: {INSTALL_HINT}")


@dataclass(frozen=True)
class LabelerSpec:
    """What a labeler is, as plain data that can be sent to worker processes: name and options."""

    name: str                       # gfn2 | ani2x | pyscf
    ani_dir: str | None = None      # folder with the NeuroChem ANI-2x files (ani2x only)
    pyscf_method: str = DEFAULT_PYSCF_METHOD  # "<functional>[-d3bj|-d3|-d4]/<basis>" (pyscf only)

    def make(self) -> "Labeler":
        """The labeler this spec describes (imports its library; raises MissingDependencyError if absent)."""
        if self.name == "gfn2":
            return GFN2Labeler()
        if self.name == "ani2x":
            if not self.ani_dir:
                raise errors.MissingDependencyError(
                    "the ani2x labeler needs the folder of the NeuroChem ANI-2x files (--ani-dir), "
                    "e.g. ../shared/teachers/ani-2x")
            return ANI2xLabeler(self.ani_dir)
        if self.name == "pyscf":
            return PySCFLabeler(self.pyscf_method)
        raise ValueError(f"unknown labeler {self.name!r}; choose one of {', '.join(LABELER_NAMES)}")


class Labeler(ABC):
    """Energies (kcal/mol) and forces (kcal/mol/Å) of conformations at one level of theory."""

    label: str  # the label it writes: energy/<label>, forces/<label>

    @abstractmethod
    def level_of_theory(self) -> str:
        """Method, basis and program version, as written to the root attr ``level_of_theory.<label>``."""

    def check(self, atomic_numbers: np.ndarray, total_charge: int, formal_charges=None, bonds=()) -> None:
        """Raise LabelerRejectedError if the labeler cannot treat this molecule (default: any molecule is fine)."""

    @abstractmethod
    def single_point(self, atomic_numbers: np.ndarray, positions: np.ndarray, total_charge: int
                     ) -> tuple[float, np.ndarray]:
        """(energy kcal/mol, forces (N, 3) kcal/mol/Å) of one conformation (positions (N, 3) Å)."""

    def energies_and_forces(self, atomic_numbers: np.ndarray, conformations: np.ndarray, total_charge: int):
        """(energies (M,) kcal/mol, forces (M, N, 3) kcal/mol/Å, failures {row: reason}) for (M, N, 3) Å.

        Rows the labeler fails on (LabelerFailedError) get NaN and are listed in ``failures``.
        """
        n_rows, n_atoms = conformations.shape[:2]
        energies = np.full(n_rows, np.nan)
        forces = np.full((n_rows, n_atoms, 3), np.nan)
        failures = {}
        for row, positions in enumerate(conformations):
            try:
                energies[row], forces[row] = self.single_point(atomic_numbers, positions, total_charge)
            except LabelerFailedError as error:
                failures[row] = str(error)
        return energies, forces, failures


class GFN2Labeler(Labeler):
    """GFN2-xTB single points through tblite's Python API (gas phase, closed shell)."""

    label = "gfn2"
    max_iterations = 250

    def __init__(self):
        try:
            from tblite.interface import Calculator
        except ImportError as error:
            raise _missing("tblite", "gfn2", error) from None
        self._calculator_class = Calculator

    def level_of_theory(self) -> str:
        return f"GFN2-xTB (tblite {_version('tblite')}), gas phase, no solvation"

    def single_point(self, atomic_numbers, positions, total_charge):
        calculator = self._calculator_class(
            "GFN2-xTB", np.asarray(atomic_numbers, dtype=np.int32),
            np.asarray(positions, dtype=np.float64) / BOHR_TO_ANGSTROM, charge=float(total_charge))
        calculator.set("verbosity", 0)
        calculator.set("max-iter", self.max_iterations)
        try:
            result = calculator.singlepoint()
        except RuntimeError as error:  # tblite's TBLiteRuntimeError, e.g. "SCF not converged"
            raise LabelerFailedError(f"GFN2-xTB: {error}") from None
        energy = float(result.get("energy")) * HARTREE_TO_KCAL
        forces = -np.asarray(result.get("gradient"), dtype=np.float64) * (HARTREE_TO_KCAL / BOHR_TO_ANGSTROM)
        return energy, forces


def is_zwitterion(formal_charges, bonds) -> bool:
    """True if the molecule holds a charged atom with no oppositely charged neighbour (nitro, N-oxide do not count)."""
    charged = {index: charge for index, charge in enumerate(formal_charges) if charge}
    if not charged:
        return False
    neighbours: dict[int, set[int]] = {}
    for i, j in bonds:
        neighbours.setdefault(i, set()).add(j)
        neighbours.setdefault(j, set()).add(i)
    return any(not any(charged.get(n, 0) * charge < 0 for n in neighbours.get(index, ()))
               for index, charge in charged.items())


class ANI2xLabeler(Labeler):
    """ANI-2x (torchani) from the NeuroChem files of a folder: every ``train<k>/`` there is an ensemble member."""

    label = "ani2x"

    def __init__(self, teacher_dir: str | os.PathLike):
        os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
        try:
            import torch
            import torchani
            from torchani.neurochem import load_aev_computer_and_symbols, load_member, load_sae
            from torchani.nn import Ensemble
        except ImportError as error:
            raise _missing("torchani", "ani2x", error) from None
        folder = Path(teacher_dir)
        constants = folder / "rHCNOSFCl-5.1R_16-3.5A_a8-4.params"
        members = sorted((p for p in folder.glob("train*") if (p / "networks").is_dir()),
                         key=lambda p: int(p.name[5:]) if p.name[5:].isdigit() else 1 << 30)
        if not constants.is_file() or not (folder / "sae_linfit.dat").is_file() or not members:
            raise errors.MissingDependencyError(
                f"{folder}: not a folder of NeuroChem ANI-2x files (needs {constants.name}, sae_linfit.dat and "
                "train<k>/networks/); see shared/teachers/README.md")
        self._torch = torch
        aev_computer, symbols = load_aev_computer_and_symbols(constants)
        networks = Ensemble([load_member(symbols, member / "networks") for member in members])
        model = torchani.arch.ANI(symbols, aev_computer, networks, load_sae(folder / "sae_linfit.dat"),
                                  periodic_table_index=True)
        model.requires_grad_(False)
        self._model = model.to(torch.float64)
        self._members = [member.name[5:] for member in members]

    def level_of_theory(self) -> str:
        return (f"ANI-2x (torchani {_version('torchani')}; NeuroChem ANI-2x parameters, ensemble members "
                f"{','.join(self._members)}), approximates wB97X/6-31G(d)")

    def check(self, atomic_numbers, total_charge, formal_charges=None, bonds=()):
        others = sorted({int(z) for z in atomic_numbers} - set(ANI2X_ELEMENTS))
        if others:
            from rdkit import Chem

            symbols = " ".join(Chem.GetPeriodicTable().GetElementSymbol(z) for z in others)
            raise LabelerRejectedError(f"ANI-2x has no parameters for element(s) {symbols} (it covers H C N O F S Cl)")
        if total_charge != 0:
            raise LabelerRejectedError(f"ANI-2x is for neutral molecules; total charge is {total_charge:+d}")
        if formal_charges is not None and is_zwitterion(formal_charges, bonds):
            raise LabelerRejectedError("ANI-2x is for neutral molecules; this one is a zwitterion")

    def _evaluate(self, atomic_numbers, conformations):
        torch = self._torch
        species = torch.as_tensor(np.asarray(atomic_numbers, dtype=np.int64)).repeat(len(conformations), 1)
        coordinates = torch.tensor(np.asarray(conformations, dtype=np.float64), requires_grad=True)
        with torch.enable_grad():
            energies = self._model((species, coordinates)).energies
            gradient = torch.autograd.grad(energies.sum(), coordinates)[0]
        return (energies.detach().numpy() * HARTREE_TO_KCAL,
                -gradient.numpy() * HARTREE_TO_KCAL)  # Hartree/Å -> kcal/mol/Å

    def single_point(self, atomic_numbers, positions, total_charge):
        energies, forces = self._evaluate(atomic_numbers, np.asarray(positions)[None])
        return float(energies[0]), forces[0]

    def energies_and_forces(self, atomic_numbers, conformations, total_charge):
        energies, forces = self._evaluate(atomic_numbers, conformations)
        return energies, forces, {}


def parse_pyscf_method(method: str) -> tuple[str, str | None, str]:
    """``"b3lyp-d3bj/def2-svp"`` -> (functional "b3lyp", dispersion "d3bj" or None, basis "def2-svp")."""
    if method.count("/") != 1:
        raise ValueError(f"pyscf method {method!r}: expected <functional>[-d3bj|-d3|-d4]/<basis>, e.g. "
                         f"{DEFAULT_PYSCF_METHOD}")
    functional, basis = (part.strip() for part in method.split("/"))
    dispersion = None
    for suffix in DISPERSION_SUFFIXES:
        if functional.lower().endswith("-" + suffix):
            functional, dispersion = functional[:-len(suffix) - 1], suffix
            break
    if not functional or not basis:
        raise ValueError(f"pyscf method {method!r}: functional and basis must not be empty")
    return functional, dispersion, basis


class PySCFLabeler(Labeler):
    """Kohn-Sham DFT (restricted, closed shell) with density fitting through pyscf, gas phase.

    ``method`` is ``<functional>[-d3bj|-d3|-d4]/<basis>``; the functional ``hf`` gives Hartree-Fock.
    Each conformation starts from the converged density of the previous one (same molecule).
    """

    label = "dft"
    convergence_tolerance = 1e-9  # Hartree

    def __init__(self, method: str = DEFAULT_PYSCF_METHOD):
        self.functional, self.dispersion, self.basis = parse_pyscf_method(method)
        try:
            import pyscf
            from pyscf import dft, gto, scf
        except ImportError as error:
            raise _missing("pyscf", "pyscf", error) from None
        if self.dispersion:
            try:
                importlib.import_module("pyscf.dispersion")
            except ImportError as error:
                raise _missing("pyscf-dispersion", f"pyscf ({self.dispersion})", error) from None
        self._pyscf, self._dft, self._gto, self._scf = pyscf, dft, gto, scf
        if self.functional.lower() != "hf":
            self._check_functional()
        try:  # a misspelt basis should stop the run, not fail every molecule
            gto.M(atom=[(1, (0.0, 0.0, 0.0)), (1, (0.0, 0.0, 0.74))], basis=self.basis, unit="Angstrom", verbose=0)
        except (RuntimeError, KeyError, ValueError, OSError) as error:
            raise ValueError(f"pyscf does not know the basis {self.basis!r} ({' '.join(str(error).split())})") from None
        self._previous = None  # (atomic numbers, total charge, density matrix) for the initial guess

    def _check_functional(self) -> None:
        """Raise ValueError now, not on every molecule, if pyscf does not know the functional."""
        from pyscf.dft import dft_parser, libxc

        name = f"{self.functional}-{self.dispersion}" if self.dispersion else self.functional
        try:
            libxc.parse_xc(dft_parser.parse_dft(name)[0])
        except (KeyError, ValueError) as error:
            raise ValueError(f"pyscf does not know the functional {name!r} ({error})") from None

    def level_of_theory(self) -> str:
        dispersion = f"-{self.dispersion.upper()}" if self.dispersion else ""
        extra = f", pyscf-dispersion {_version('pyscf-dispersion')}" if self.dispersion else ""
        return (f"{self.functional.upper()}{dispersion}/{self.basis} with density fitting (pyscf "
                f"{self._pyscf.__version__}{extra}), restricted closed shell, gas phase")

    def check(self, atomic_numbers, total_charge, formal_charges=None, bonds=()):
        if (int(np.sum(atomic_numbers)) - int(total_charge)) % 2:
            raise LabelerRejectedError("odd number of electrons: the pyscf labeler is restricted closed shell")

    def single_point(self, atomic_numbers, positions, total_charge):
        atoms = [(int(z), tuple(float(c) for c in xyz)) for z, xyz in zip(atomic_numbers, positions)]
        try:
            molecule = self._gto.M(atom=atoms, basis=self.basis, charge=int(total_charge), spin=0,
                                   unit="Angstrom", verbose=0)
        except (RuntimeError, KeyError, ValueError) as error:
            raise LabelerRejectedError(f"pyscf cannot build the molecule with basis {self.basis}: {error}") from None
        if self.functional.lower() == "hf":
            calculation = self._scf.RHF(molecule).density_fit()
            if self.dispersion:
                calculation.disp = self.dispersion
        else:  # pyscf reads "<functional>-d3bj" itself (also e.g. wb97m-d3bj, which has no plain libxc name)
            calculation = self._dft.RKS(molecule).density_fit()
            calculation.xc = f"{self.functional}-{self.dispersion}" if self.dispersion else self.functional
        calculation.conv_tol = self.convergence_tolerance
        key = (tuple(int(z) for z in atomic_numbers), int(total_charge))
        initial = self._previous[1] if self._previous is not None and self._previous[0] == key else None
        energy = calculation.kernel(dm0=initial)
        if not calculation.converged:
            raise LabelerFailedError(f"pyscf {self.functional}/{self.basis}: SCF not converged")
        self._previous = (key, calculation.make_rdm1())
        gradient = calculation.nuc_grad_method().kernel()  # Hartree/bohr
        return (float(energy) * HARTREE_TO_KCAL,
                -np.asarray(gradient, dtype=np.float64) * (HARTREE_TO_KCAL / BOHR_TO_ANGSTROM))
