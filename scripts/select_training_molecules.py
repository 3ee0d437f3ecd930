"""Pick new training molecules for the dataset builder from public MoleculeNet lists.

Writes two SMILES files for ``grappa-like build-dataset``:

- ``<out>/ani2x.smi``: neutral molecules of the elements H C N O F S Cl without zwitterionic groups
  (ANI-2x applies);
- ``<out>/gfn2.smi``: charged molecules and molecules with P, Br or I (GFN2-xTB labels).

Sources (CSV files with a ``smiles`` column; pass the paths): MoleculeNet BACE (BACE-1 inhibitors,
many with 35-60 heavy atoms), BBBP (drugs and drug candidates), SIDER (marketed drugs) and Tox21
(environmental chemicals and drugs; used only for the P/Br/I quota), as copied in the public repository
``HICAI-ZJU/KANO`` (``data/bace.csv``, ``data/bbbp.csv``, ``data/sider.csv``, ``data/tox21.csv``,
commit ``766b478fde816ea014c713f380b73e87cd780da8``).

Rules: largest fragment of a salt, elements H C N O F P S Cl Br I, 3-60 heavy atoms, no radicals,
|total charge| <= 2, readable by grappa_like. Molecules already in the training data or in any
benchmark set (``../shared/benchmarks``) are excluded by canonical SMILES without stereo, and every
molecule whose standard InChIKey starts with a connectivity block (first 14 characters) listed in
``../shared/data/held-out-inchikeys.txt`` (molecules held out for independent evaluation; the block
ignores stereo and protonation, so their stereoisomers and charged forms go too). Charged
forms are added by one rule per molecule (first carboxylic acid -> carboxylate, else first
aliphatic amine -> ammonium), as in train-v0. Selection: quotas (large, P/Br/I, charged) filled
first by MaxMin picking on Morgan fingerprints (radius 2, 2048 bits), the rest by MaxMin over
the remaining pool; seeded.

    python scripts/select_training_molecules.py KANO/data/{bace,bbbp,sider,tox21}.csv -o data/v1-smiles
"""
from __future__ import annotations

import argparse
import csv
import glob
import sys
from pathlib import Path

import h5py
from rdkit import Chem, RDLogger
from rdkit.Chem import AllChem
from rdkit.Chem.MolStandardize import rdMolStandardize
from rdkit.SimDivFilters import rdSimDivPickers

from grappa_like import errors, molecule

ANI_ELEMENTS = {"H", "C", "N", "O", "F", "S", "Cl"}
ALLOWED_ELEMENTS = ANI_ELEMENTS | {"P", "Br", "I"}
CARBOXYLIC_ACID = Chem.MolFromSmarts("[CX3](=O)[OX2H1]")
ALIPHATIC_AMINE = Chem.MolFromSmarts("[NX3;H2,H1,H0;!$(N-[a]);!$(N-C=[O,S,N]);!$(N-S(=O)=O);!$(N-[#7,#8])]")


def canonical_key(mol: Chem.Mol) -> str:
    """Canonical SMILES without stereo, hydrogens or atom map numbers: the key for overlap checks."""
    mol = Chem.RemoveHs(mol)
    for atom in mol.GetAtoms():
        atom.SetAtomMapNum(0)  # the data files store mapped SMILES; unmapped keys are what candidates have
    return Chem.MolToSmiles(mol, isomericSmiles=False)


def excluded_keys(paths) -> set[str]:
    """Keys of every molecule in the given grappa_like-qm-v1 files."""
    keys = set()
    for path in paths:
        with h5py.File(path, "r") as handle:
            for group in handle.values():
                if not isinstance(group, h5py.Group) or "smiles" not in group.attrs:
                    continue
                mol = Chem.MolFromSmiles(str(group.attrs["smiles"]), sanitize=True)
                if mol is not None:
                    keys.add(canonical_key(mol))
    return keys


def held_out_blocks(path) -> set[str]:
    """First 14 characters (the connectivity block) of every InChIKey in ``path`` (``#`` comments skipped)."""
    blocks = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            blocks.add(text.split()[0][:14].upper())
    return blocks


def inchikey_block(mol: Chem.Mol) -> str:
    """Connectivity block (first 14 characters) of the standard InChIKey of ``mol``; "" if InChI fails."""
    try:
        key = Chem.MolToInchiKey(mol)
    except Exception:  # noqa: BLE001 - InChI failures are rare and only mean "no key"
        return ""
    return key[:14] if key else ""


def is_held_out(mol: Chem.Mol, blocks: set[str]) -> bool:
    """True when ``mol``'s InChIKey connectivity block is one of the held-out ``blocks``."""
    return bool(blocks) and inchikey_block(mol) in blocks


def clean(smiles: str) -> Chem.Mol | None:
    """Largest fragment of ``smiles`` if it passes the element, size and charge rules, else None."""
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    mol = rdMolStandardize.LargestFragmentChooser().choose(mol)
    symbols = {atom.GetSymbol() for atom in mol.GetAtoms()}
    heavy = mol.GetNumHeavyAtoms()
    if not symbols <= ALLOWED_ELEMENTS or not 3 <= heavy <= 60:
        return None
    if any(atom.GetNumRadicalElectrons() for atom in mol.GetAtoms()):
        return None
    if abs(Chem.GetFormalCharge(mol)) > 2:
        return None
    try:
        molecule.from_smiles(Chem.MolToSmiles(mol), name="candidate")
    except errors.GrappaLikeError:
        return None
    return mol


def ionized_form(mol: Chem.Mol) -> tuple[Chem.Mol, str] | None:
    """One charged form of a neutral molecule by a single-site rule, or None."""
    rw = Chem.RWMol(mol)
    acid = mol.GetSubstructMatch(CARBOXYLIC_ACID)
    if acid:
        oxygen = rw.GetAtomWithIdx(acid[2])
        oxygen.SetFormalCharge(-1)
        oxygen.SetNumExplicitHs(0)
        rule = "carboxylate"
    else:
        amine = mol.GetSubstructMatch(ALIPHATIC_AMINE)
        if not amine:
            return None
        protonate(rw, amine[0])
        rule = "ammonium"
    return sanitized(rw, rule)


def protonate(rw: Chem.RWMol, index: int) -> None:
    """Add one H and charge +1 to the nitrogen at ``index`` of an editable molecule."""
    nitrogen = rw.GetAtomWithIdx(index)
    nitrogen.SetFormalCharge(1)
    nitrogen.SetNumExplicitHs(nitrogen.GetTotalNumHs() + 1)
    nitrogen.SetNoImplicit(True)


def sanitized(rw: Chem.RWMol, rule: str):
    """(molecule, rule) if the edited molecule sanitizes, else None (the form is skipped)."""
    try:
        Chem.SanitizeMol(rw)
    except Exception:  # noqa: BLE001 - RDKit raises several unrelated types; such a form is just skipped
        return None
    return rw.GetMol(), rule


def is_zwitterion(mol: Chem.Mol) -> bool:
    charges = [atom.GetFormalCharge() for atom in mol.GetAtoms()]
    return any(c > 0 for c in charges) and any(c < 0 for c in charges)


def needs_gfn2(mol: Chem.Mol) -> bool:
    symbols = {atom.GetSymbol() for atom in mol.GetAtoms()}
    return bool(Chem.GetFormalCharge(mol)) or is_zwitterion(mol) or not symbols <= ANI_ELEMENTS


def maxmin_pick(candidates: list, count: int, seed: int) -> list:
    """``count`` mutually distant candidates (MaxMin on Morgan fingerprints)."""
    if count >= len(candidates):
        return list(candidates)
    fingerprints = [AllChem.GetMorganFingerprintAsBitVect(c["mol"], 2, 2048) for c in candidates]
    picker = rdSimDivPickers.MaxMinPicker()
    picked = picker.LazyBitVectorPick(fingerprints, len(fingerprints), count, seed=seed)
    return [candidates[i] for i in picked]


def read_candidates(paths, excluded: set[str], held_out: set[str] = frozenset()) -> list[dict]:
    """Cleaned, de-duplicated candidates (with one rule-ionized form per neutral molecule), none of them
    in ``excluded`` (canonical keys) or with an InChIKey block in ``held_out``."""
    seen = set(excluded)
    candidates = []

    def add(mol, source):
        key = canonical_key(mol)
        if key in seen:
            return
        seen.add(key)
        if is_held_out(mol, held_out):
            return
        candidates.append({"mol": mol, "smiles": Chem.MolToSmiles(mol), "source": source, "key": key})

    for path in paths:
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                mol = clean(row.get("smiles") or row.get("mol") or "")
                if mol is None:
                    continue
                add(mol, Path(path).stem)
                if Chem.GetFormalCharge(mol) == 0 and not is_zwitterion(mol):
                    charged = ionized_form(mol)
                    if charged is not None:
                        add(charged[0], f"{Path(path).stem}+{charged[1]}")
    return candidates


def base_source(candidate: dict) -> str:
    return candidate["source"].split("+")[0]


def select(candidates: list[dict], total: int, quotas: dict[str, int], seed: int,
           pbri_only_sources: frozenset = frozenset()) -> list[dict]:
    """Quota categories first, then MaxMin over the rest, up to ``total`` molecules.

    Candidates from ``pbri_only_sources`` (CSV stems) compete only for the P/Br/I quota, rule-ionized
    forms only for the quotas.
    """
    tests = {
        "large": lambda c: c["mol"].GetNumHeavyAtoms() > 35,
        "pbri": lambda c: bool({a.GetSymbol() for a in c["mol"].GetAtoms()} & {"P", "Br", "I"}),
        "charged": lambda c: Chem.GetFormalCharge(c["mol"]) != 0,
    }
    chosen, chosen_keys = [], set()
    for category, count in quotas.items():
        pool = [c for c in candidates if tests[category](c) and c["key"] not in chosen_keys
                and (category == "pbri" or base_source(c) not in pbri_only_sources)]
        for c in maxmin_pick(pool, count, seed):
            chosen.append(c)
            chosen_keys.add(c["key"])
    rest = [c for c in candidates if c["key"] not in chosen_keys and base_source(c) not in pbri_only_sources
            and "+" not in c["source"]]
    chosen += maxmin_pick(rest, max(0, total - len(chosen)), seed)
    return chosen


def main(argv=None) -> int:
    RDLogger.DisableLog("rdApp.*")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("csv_files", nargs="+", help="MoleculeNet CSV files with a 'smiles' (or 'mol') column")
    parser.add_argument("-o", "--output", required=True, help="folder for ani2x.smi and gfn2.smi")
    parser.add_argument("--total", type=int, default=600)
    parser.add_argument("--large", type=int, default=120, help="quota of molecules with > 35 heavy atoms")
    parser.add_argument("--pbri", type=int, default=60, help="quota of molecules with P, Br or I")
    parser.add_argument("--charged", type=int, default=120, help="quota of charged molecules")
    parser.add_argument("--exclude", nargs="*", default=None,
                        help="grappa_like-qm-v1 files whose molecules are excluded "
                             "(default: ../shared/data/*.h5 and ../shared/benchmarks/*.h5)")
    parser.add_argument("--pbri-only-from", nargs="*", default=["tox21"],
                        help="CSV stems whose molecules only fill the P/Br/I quota (default: tox21, which is "
                             "mostly industrial chemicals)")
    parser.add_argument("--held-out", default="../shared/data/held-out-inchikeys.txt",
                        help="InChIKeys of molecules held out for independent evaluation; molecules whose key's "
                             "first 14 characters are listed are never picked (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=20261125)
    args = parser.parse_args(argv)

    exclude = args.exclude if args.exclude is not None else sorted(
        glob.glob("../shared/data/*.h5") + glob.glob("../shared/benchmarks/*.h5"))
    excluded = excluded_keys(exclude)
    candidates = read_candidates(args.csv_files, excluded, held_out_blocks(args.held_out))
    chosen = select(candidates, args.total, {"large": args.large, "pbri": args.pbri, "charged": args.charged},
                    args.seed, frozenset(args.pbri_only_from))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    files = {"ani2x": [], "gfn2": []}
    for index, c in enumerate(chosen):
        files["gfn2" if needs_gfn2(c["mol"]) else "ani2x"].append(f"{c['smiles']} v1_{index:04d}_{c['source']}")
    for label, lines in files.items():
        (out / f"{label}.smi").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(candidates)} candidates after excluding {len(excluded)} known molecules; chose {len(chosen)}: "
          f"{len(files['ani2x'])} for ANI-2x, {len(files['gfn2'])} for GFN2", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
