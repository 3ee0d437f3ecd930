"""Pick the v3 additions to the training molecules (issue 17, item 3) and write them as chunked .smi lists.

Writes ``<out>/<group>-ani2x-NN.smi`` (neutral molecules of H C N O F S Cl without zwitterionic
groups: ANI-2x applies) and ``<out>/<group>-gfn2-NN.smi`` (charged forms, zwitterions, P/Br/I:
GFN2-xTB only), ``--chunk`` molecules per file in a seeded random order, so that every chunk is a
sample of the whole selection and a partial build is usable; ``<group>`` is ``hbond`` for enols
and intramolecular hydrogen bonds (built as their own subset, so that training can prefer GFN2
labels for them with ``--labels hbond=gfn2/ani2x,...``) and ``druglike`` for the rest; and
``<out>/selection.tsv`` (one row per molecule: name, SMILES, label, group, source, families).

Sources (CSV files with a ``smiles`` column, passed on the command line): the MoleculeNet copies
in the public repository ``HICAI-ZJU/KANO`` at commit ``766b478fde816ea014c713f380b73e87cd780da8``,
``data/{hiv,lipo,bace,bbbp,clintox,sider,esol,freesolv,tox21}.csv`` (HIV: 41,127 NCI screening
compounds, the bulk of the pool; Lipophilicity: 4,200 ChEMBL compounds; BACE, BBBP, ClinTox, SIDER:
drugs and drug candidates; ESOL, FreeSolv: small molecules; Tox21: environmental chemicals, used only
for the family quotas and P/Br/I, see ``--family-only-from``). KANO's ``muv``, ``toxcast`` and
``zinc15_250K`` files are not stored in that repository (Git LFS pointers) and ``qm7``/``qm8`` are
GDB enumerations, not drug-like: not used. Plus molecules enumerated here (``enumerated_members``):
small, systematic members of the families below, so that each family has simple cases next to the
drug-like ones.

Rules (as for v1, ``select_training_molecules.py``, whose helpers this script uses): largest
fragment of a salt, elements H C N O F P S Cl Br I, 3-60 heavy atoms, no radicals, |total charge|
<= 2, readable by grappa_like. One rule-ionized form per neutral molecule (``ionized_form``:
carboxylic acid -> carboxylate, P-OH -> P-O-, amidine/guanidine -> cation, aliphatic amine ->
ammonium; plausible states, not pKa predictions).

Excluded:
- every molecule of ``../shared/data/*.h5`` (train-v0) and of the committed v1 lists
  (``data/train-v1/*.smi``), by canonical SMILES without stereo;
- every molecule of ``../shared/benchmarks/*.h5`` by canonical SMILES without stereo, and also
  every tautomer of one (RDKit's canonical tautomer, compared for candidates with a benchmark
  molecule's formula), so that e.g. the keto form of acetylacetone or the enol of malonaldehyde
  are out too;
- every molecule whose standard InChIKey connectivity block (first 14 characters) is in
  ``../shared/data/held-out-inchikeys.txt`` (held out for independent evaluation; the rule also
  removes stereoisomers and other protonation states).

Stereo: a picked molecule with unspecified ring stereocentres whose first enumerated stereoisomer
(the builder's choice) cannot be embedded gets a stereoisomer that can (``feasible_stereo``); the
few without any are dropped.

Selection (seeded; Morgan fingerprints radius 2, 2048 bits): all enumerated members first; then,
per family (``FAMILIES``: SMARTS tags), ``--family-quota`` MaxMin picks from the public lists; then the quotas of large (> 35 heavy atoms), P/Br/I and charged molecules; then MaxMin over
the rest of the drug-like pool up to ``--total``.

    python scripts/select_training_molecules_v3.py \\
        KANO/data/{hiv,lipo,bace,bbbp,clintox,sider,esol,freesolv,tox21}.csv -o data/train-v3
"""
from __future__ import annotations

import argparse
import csv
import glob
import itertools
import random
import sys
from collections import Counter
from pathlib import Path

from rdkit import Chem, RDLogger
from rdkit.Chem import AllChem, rdMolDescriptors
from rdkit.Chem.EnumerateStereoisomers import EnumerateStereoisomers, StereoEnumerationOptions
from rdkit.Chem.MolStandardize import rdMolStandardize

sys.path.insert(0, str(Path(__file__).resolve().parent))
import select_training_molecules as v1  # noqa: E402  (the v1 helpers: clean, canonical_key, held-out rule)

# Family tags: a molecule belongs to a family when any of its SMARTS matches.
FAMILIES = {
    # enols (C=C-OH outside aromatic rings, incl. enolised 1,3-dicarbonyls such as acac's enol) and
    # enolisable beta-dicarbonyls (diketones, keto esters, malonates)
    "enol": ["[OX2H1][CX3;!a]=[CX3;!a]", "[CX3;!a](=[OX1])[CX4;!H0][CX3;!a](=[OX1])"],
    # donor-H ... acceptor closing a six-membered pseudo-ring: D-X=Y-Z=A (salicyl carbonyls,
    # o-nitrophenols/anilines, enaminones, 2-hydroxyazo, enols of 1,3-dicarbonyls)
    "intramolecular_hbond": [
        "[OX2H1,NX3;H1,H2;!$(N-S(=O)=O);!$([N+])]-[#6]=,:[#6]-[#6,#7,#16]=[OX1,NX2,SX1]",
        "[OX2H1,NX3;H1,H2;!$(N-S(=O)=O);!$([N+])]-[#6]=,:[#6]-[#7X3+](=O)[O-]",
    ],
    # azo compounds, aryl-heteroaryl and heteroaryl-heteroaryl links, aryl imines/hydrazones/oximes
    "azo_heteroaryl": [
        "[#6]-[NX2]=[NX2]-[#6]",
        "[a;$(a@[n,o,s]),$(a@a@[n,o,s]),$(a@a@a@[n,o,s])]-!@[a]",
        "[a]-[CX3]=[NX2]",
    ],
    "sulfonamide": ["[SX4](=[OX1])(=[OX1])[NX3]"],
    # phosphates, phosphonates, phosphoramidates, thiophosphates (P(V) with a P=O or P=S)
    "phosphate": ["[PX4](=[OX1,SX1])"],
}
FAMILY_PATTERNS = {name: [Chem.MolFromSmarts(s) for s in smarts] for name, smarts in FAMILIES.items()}

PHOSPHORIC_OH = Chem.MolFromSmarts("[PX4](=[O,S])[OX2H1]")
AMIDINE = Chem.MolFromSmarts("[NX3;H2,H1;!$(N-C=O)]-[CX3;!a](=[NX2;H1,H0;!$(N-[a]);!$(N-C=O);!$(N-S);!$(N-O)])")


def families_of(mol: Chem.Mol) -> list[str]:
    """Names of the ``FAMILIES`` whose SMARTS match ``mol`` (in ``FAMILIES`` order)."""
    return [name for name, patterns in FAMILY_PATTERNS.items() if any(mol.HasSubstructMatch(p) for p in patterns)]


def ionized_form(mol: Chem.Mol) -> tuple[Chem.Mol, str] | None:
    """One charged form of a neutral molecule by the first rule that applies, or None.

    Rules, in order: carboxylic acid -> carboxylate, P-OH of a phosph(on)ate -> P-O-, amidine or
    guanidine -> cation (protonated at the imine N), aliphatic amine -> ammonium (v1's rules).
    """
    if mol.HasSubstructMatch(v1.CARBOXYLIC_ACID):
        return v1.ionized_form(mol)
    rw = Chem.RWMol(mol)
    match = mol.GetSubstructMatch(PHOSPHORIC_OH)
    if match:
        oxygen = rw.GetAtomWithIdx(match[2])
        oxygen.SetFormalCharge(-1)
        oxygen.SetNumExplicitHs(0)
        oxygen.SetNoImplicit(True)
        rule = "phosphate_anion"
    else:
        match = mol.GetSubstructMatch(AMIDINE)
        if not match:
            return v1.ionized_form(mol)
        v1.protonate(rw, match[2])
        rule = "amidinium"
    return v1.sanitized(rw, rule)


def _attach(ring: str, substituent: str) -> str:
    """SMILES of ring SMILES ``ring`` (an atom and ring-closure digit first) with ``substituent`` on its first atom."""
    return f"{ring[:2]}({substituent}){ring[2:]}"


def enumerated_members() -> list[tuple[str, str]]:
    """Small, systematic members of the families: (SMILES, family) pairs, in a fixed order.

    beta-dicarbonyls R1-CO-CH(R3)-CO-R2 as keto form and as the Z-enol whose O-H points at the
    other carbonyl; enaminones; ortho donor/acceptor benzenes; E-azoarenes; (hetero)biaryls;
    sulfonamides R-SO2-NR'R''; phosphates, phosphonates and thiophosphates, neutral and as anions.
    """
    members = []
    ends = ["C", "CC", "C(C)(C)C", "C(F)(F)F", "c1ccccc1", "c1ccco1", "c1cccs1", "OC"]
    middles = ["", "C", "Cl"]
    for r1, r2 in itertools.combinations_with_replacement(ends, 2):
        if r1 == r2 == "OC":
            continue  # dimethyl malonate: no enol worth having; keep the list ketone-based
        for r3 in middles:
            branch = f"({r3})" if r3 else ""
            members.append((f"O=C({r1})C{branch}C(=O){r2}", "enol"))
            # Z-enol: O-H on the carbon of r1, hydrogen-bonded to the carbonyl of r2
            members.append((f"O/C({r1})=C{branch}\\C(=O){r2}" if not r3 else f"O/C({r1})=C({r3})\\C(=O){r2}", "enol"))
    for r1, amine in itertools.product(["C", "c1ccccc1", "C(F)(F)F"], ["N", "CN", "c1ccccc1N"]):
        for r2 in ["C", "c1ccccc1", "OC"]:
            members.append((f"{amine}/C({r1})=C\\C(=O){r2}", "intramolecular_hbond"))
    donors = ["O", "N", "CN", "CC(=O)N"]  # written before the ring: the donor sits on ring atom 1
    acceptors = ["C=O", "C(C)=O", "C(=O)OC", "C(N)=O", "[N+](=O)[O-]", "C(=O)c1ccccc1", "/N=N/c1ccccc1", "C=NO"]
    rings = ["c1ccccc1", "c1ccc(C)cc1", "c1cc(Cl)ccc1", "c1ccc(OC)cc1"]  # the acceptor goes on ring atom 6: ortho
    for donor, acceptor, ring in itertools.product(donors, acceptors, rings):
        members.append((donor + ring + acceptor, "intramolecular_hbond"))
    aryls = ["c1ccccc1", "c1ccc(C)cc1", "c1ccc(OC)cc1", "c1ccc(N(C)C)cc1", "c1ccc(Cl)cc1", "c1ccc(F)cc1",
             "c1ccc([N+](=O)[O-])cc1", "c1ccccn1", "c1ccncc1", "c1nccs1", "c1cccs1", "c1ccc(O)cc1"]
    for a, b in itertools.combinations_with_replacement(aryls, 2):
        members.append((_attach(a, "/N=N/" + b.replace("1", "2")), "azo_heteroaryl"))  # E-azo
    heteroaryls = ["c1ccccn1", "c1cccnc1", "c1ccncc1", "c1ncccn1", "c1cccs1", "c1ccsc1", "c1ccco1", "c1nccs1",
                   "n1cccn1", "c1ncc[nH]1", "c1ncco1", "c1ccc[nH]1", "c1ccccc1"]
    for a, b in itertools.combinations_with_replacement(heteroaryls, 2):
        if a == b == "c1ccccc1" or (a.startswith("n") and b.startswith("n")):
            continue  # biphenyl is in the lists already; N-N linked azoles are unusual
        members.append((_attach(a, b.replace("1", "2")), "azo_heteroaryl"))
    sulfonyls = ["C", "CC", "C(F)(F)F", "c1ccccc1", "c1ccc(C)cc1", "c1ccc(N)cc1", "c1cccs1"]
    amines = ["N", "NC", "N(C)C", "Nc1ccccc1", "N1CCCC1", "N1CCOCC1", "NC(C)=O"]
    for sulfonyl, amine in itertools.product(sulfonyls, amines):
        members.append((f"O=S(=O)({sulfonyl}){amine}", "sulfonamide"))
    alkyls = ["C", "CC", "CC(C)", "c1ccccc1"]
    for r in alkyls:
        members += [(f"{r}OP(=O)(O{r})O{r}", "phosphate"), (f"{r}OP(=O)(O{r})O", "phosphate"),
                    (f"{r}OP(=O)(O{r})[O-]", "phosphate"), (f"{r}OP(=O)(O)O", "phosphate"),
                    (f"{r}OP(=O)([O-])O", "phosphate"), (f"{r}OP(=O)([O-])[O-]", "phosphate"),
                    (f"{r}P(=O)(OC)OC", "phosphate"), (f"{r}P(=O)(O)O", "phosphate"),
                    (f"{r}P(=O)([O-])OC", "phosphate"), (f"{r}OP(=S)(O{r})O{r}", "phosphate"),
                    (f"{r}OP(=O)(O{r})N", "phosphate"), (f"{r}OP(=O)(O{r})N(C)C", "phosphate"),
                    (f"{r}OP(=O)(O{r})F", "phosphate"), (f"{r}SP(=O)(O{r})O{r}", "phosphate")]
    members += [("CN(C)P(=O)(N(C)C)N(C)C", "phosphate"), ("COP(=O)(OC)OC=C(Cl)Cl", "phosphate"),
                ("COP(=O)(OC)C(O)C(Cl)(Cl)Cl", "phosphate"), ("O=P1(O)OCCCO1", "phosphate"),
                ("CCOP(=O)(CC)OCC", "phosphate"), ("OCC1OC(O)C(O)C1OP(=O)(O)O", "phosphate")]
    return members


def benchmark_tautomer_keys(paths) -> dict[str, set[str]]:
    """Canonical tautomers (stereo-free SMILES) of the molecules in ``paths``, by molecular formula."""
    enumerator = _tautomer_enumerator()
    keys: dict[str, set[str]] = {}
    for key in v1.excluded_keys(paths):
        mol = Chem.MolFromSmiles(key)
        if mol is not None:
            keys.setdefault(rdMolDescriptors.CalcMolFormula(mol), set()).add(_tautomer_key(mol, enumerator))
    return keys


def _tautomer_enumerator():
    enumerator = rdMolStandardize.TautomerEnumerator()
    enumerator.SetMaxTautomers(200)
    return enumerator


def _tautomer_key(mol: Chem.Mol, enumerator) -> str:
    try:
        return Chem.MolToSmiles(enumerator.Canonicalize(Chem.RemoveHs(mol)), isomericSmiles=False)
    except Exception:  # noqa: BLE001 - a molecule RDKit cannot enumerate keeps its own key
        return v1.canonical_key(mol)


def is_benchmark_tautomer(mol: Chem.Mol, tautomer_keys: dict[str, set[str]], enumerator=None) -> bool:
    """True when ``mol`` is a tautomer of a benchmark molecule (same formula, same canonical tautomer)."""
    formula = rdMolDescriptors.CalcMolFormula(mol)
    if formula not in tautomer_keys:
        return False
    return _tautomer_key(mol, enumerator or _tautomer_enumerator()) in tautomer_keys[formula]


def smi_keys(paths) -> set[str]:
    """Canonical keys of the molecules in .smi files (first column)."""
    keys = set()
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if not fields or fields[0].startswith("#") or fields[0].lower() == "smiles":
                continue
            mol = Chem.MolFromSmiles(fields[0])
            if mol is not None:
                keys.add(v1.canonical_key(mol))
    return keys


class Exclusion:
    """The exclusion rules: known keys (training data, v1 lists, benchmarks), benchmark tautomers, held-out InChIKeys."""

    def __init__(self, known_keys: set[str], tautomer_keys: dict[str, set[str]], held_out: set[str]):
        self.known_keys, self.tautomer_keys, self.held_out = set(known_keys), tautomer_keys, held_out
        self.enumerator = _tautomer_enumerator()
        self.counts = Counter()

    def reason(self, mol: Chem.Mol) -> str | None:
        """Why ``mol`` is excluded ("known", "benchmark_tautomer", "held_out"), or None."""
        if v1.canonical_key(mol) in self.known_keys:
            return "known"
        if is_benchmark_tautomer(mol, self.tautomer_keys, self.enumerator):
            return "benchmark_tautomer"
        if v1.is_held_out(mol, self.held_out):
            return "held_out"
        return None


def read_pool(paths, exclusion: Exclusion) -> list[dict]:
    """Cleaned, de-duplicated, not excluded candidates from CSV files, plus one ionized form per neutral one."""
    seen, candidates = set(), []

    def add(mol, source):
        candidate = _new_candidate(mol, source, seen, exclusion)
        if candidate is not None:
            candidates.append(candidate)

    for path in paths:
        stem = Path(path).stem
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                mol = v1.clean(row.get("smiles") or row.get("mol") or "")
                if mol is None:
                    continue
                add(mol, stem)
                if Chem.GetFormalCharge(mol) == 0 and not v1.is_zwitterion(mol):
                    charged = ionized_form(mol)
                    if charged is not None:
                        add(charged[0], f"{stem}+{charged[1]}")
    return candidates


def enumerated_pool(exclusion: Exclusion) -> list[dict]:
    """``enumerated_members`` that pass the rules and exclusions, de-duplicated."""
    seen, pool = set(), []
    for smiles, family in enumerated_members():
        mol = v1.clean(smiles)
        if mol is None:
            raise ValueError(f"enumerated member {smiles} does not pass the rules")
        candidate = _new_candidate(mol, f"enumerated_{family}", seen, exclusion)
        if candidate is not None:
            candidate["families"] = candidate["families"] or [family]
            pool.append(candidate)
    return pool


def _new_candidate(mol, source: str, seen: set, exclusion: Exclusion) -> dict | None:
    """A candidate dict for ``mol``, or None if its molecule was seen before or an exclusion rule drops it
    (counted in ``exclusion.counts``); ``seen`` is updated."""
    key = v1.canonical_key(mol)
    if key in seen:
        return None
    seen.add(key)
    reason = exclusion.reason(mol)
    if reason:
        exclusion.counts[reason] += 1
        return None
    return {"mol": mol, "smiles": Chem.MolToSmiles(mol), "source": source, "key": key, "families": families_of(mol)}


def select(pool: list[dict], enumerated: list[dict], total: int, family_quota: dict[str, int],
           quotas: dict[str, int], seed: int, family_only_sources: frozenset = frozenset()) -> list[dict]:
    """Enumerated members, then family quotas, then the large/P-Br-I/charged quotas, then MaxMin up to ``total``.

    Candidates from ``family_only_sources`` (CSV stems) compete only for the family and P/Br/I quotas;
    rule-ionized forms only for the quotas. ``family_quota``: molecules per family from ``pool``, on
    top of the enumerated members (a molecule of several families is picked once).
    """
    chosen, chosen_keys = [], set()

    def take(candidates):
        for c in candidates:
            if c["key"] not in chosen_keys:
                chosen.append(c)
                chosen_keys.add(c["key"])

    take(enumerated)
    for family, count in family_quota.items():
        pool_family = [c for c in pool if family in c["families"] and c["key"] not in chosen_keys]
        take(v1.maxmin_pick(pool_family, count, seed))
    tests = {
        "large": lambda c: c["mol"].GetNumHeavyAtoms() > 35,
        "pbri": lambda c: bool({a.GetSymbol() for a in c["mol"].GetAtoms()} & {"P", "Br", "I"}),
        "charged": lambda c: Chem.GetFormalCharge(c["mol"]) != 0,
    }
    for category, count in quotas.items():
        candidates = [c for c in pool if tests[category](c) and c["key"] not in chosen_keys
                      and (category == "pbri" or v1.base_source(c) not in family_only_sources)]
        take(v1.maxmin_pick(candidates, count, seed))
    rest = [c for c in pool if c["key"] not in chosen_keys and v1.base_source(c) not in family_only_sources
            and "+" not in c["source"]]
    take(v1.maxmin_pick(rest, max(0, total - len(chosen)), seed))
    return chosen


def _embeds(mol: Chem.Mol, seed: int, timeout: float, enforce_chirality: bool = True) -> Chem.Mol | None:
    """``mol`` with hydrogens and one ETKDGv3 conformer, or None when none comes within ``timeout`` seconds."""
    parameters = AllChem.ETKDGv3()
    parameters.randomSeed = seed
    parameters.timeout = max(1, round(timeout))
    parameters.enforceChirality = enforce_chirality
    with_h = Chem.AddHs(mol)
    return with_h if AllChem.EmbedMolecule(with_h, parameters) == 0 else None


def feasible_stereo(mol: Chem.Mol, seed: int = 1, timeout: float = 2.0) -> tuple[Chem.Mol | None, str]:
    """``mol`` with a stereoisomer that exists in 3D: (molecule, what was done), (None, why) if none is found.

    The dataset builder fixes unspecified stereo to the *first* stereoisomer RDKit enumerates; for
    bridged polycycles that isomer often cannot exist (ETKDG then retries for many minutes inside
    one C++ call, past the builder's molecule timeout). A molecule with unspecified ring stereocentres
    whose first isomer does not embed within ``timeout`` s gets the stereo of an embedding made
    without chirality constraints (assigned from its 3D structure) instead, checked to embed.
    """
    unspecified = [info for info in Chem.FindPotentialStereo(mol) if info.specified == Chem.StereoSpecified.Unspecified]
    if not any(info.type == Chem.StereoType.Atom_Tetrahedral and mol.GetAtomWithIdx(info.centeredOn).IsInRing()
               for info in unspecified):
        return mol, "as given"
    options = StereoEnumerationOptions(onlyUnassigned=True, tryEmbedding=False, unique=True)
    first = next(iter(EnumerateStereoisomers(Chem.Mol(mol), options=options)), mol)
    if _embeds(first, seed, timeout) is not None:
        return mol, "as given"
    free = _embeds(mol, seed, 4 * timeout, enforce_chirality=False)
    if free is None:
        return None, "no 3D structure without chirality constraints either"
    Chem.AssignStereochemistryFrom3D(free)
    fixed = Chem.MolFromSmiles(Chem.MolToSmiles(Chem.RemoveHs(free)))
    if fixed is None or _embeds(fixed, seed, timeout) is None:
        return None, "the stereoisomer from 3D does not embed again"
    return fixed, "stereo from 3D"


def fix_stereo(chosen: list[dict], seed: int) -> tuple[list[dict], Counter]:
    """``chosen`` with :func:`feasible_stereo` applied (SMILES updated; molecules without one dropped) and the counts."""
    kept, counts = [], Counter()
    for c in chosen:
        mol, what = feasible_stereo(c["mol"], seed)
        counts[what] += 1
        if mol is not None:
            kept.append({**c, "mol": mol, "smiles": Chem.MolToSmiles(mol)})
    return kept, counts


HBOND_FAMILIES = ("enol", "intramolecular_hbond")


def group_of(candidate: dict) -> str:
    """``hbond`` for enols and intramolecular hydrogen bonds (whose energies GFN2 may describe better), else ``druglike``."""
    return "hbond" if set(candidate["families"]) & set(HBOND_FAMILIES) else "druglike"


def write_lists(chosen: list[dict], out: Path, chunk: int, seed: int, prefix: str = "v3") -> dict[str, list[Path]]:
    """Chunked .smi files ``<group>-<label>-NN.smi`` (seeded order) and selection.tsv; returns the files per
    ``<group>-<label>``."""
    order = list(range(len(chosen)))
    random.Random(seed).shuffle(order)
    out.mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {}
    rows = ["name\tsmiles\tlabel\tgroup\tsource\tfamilies"]
    for number, index in enumerate(order):
        c = chosen[index]
        label = "gfn2" if v1.needs_gfn2(c["mol"]) else "ani2x"
        name = f"{prefix}_{number:04d}_{c['source'].replace('+', '_')}"
        lines.setdefault(f"{group_of(c)}-{label}", []).append(f"{c['smiles']} {name}")
        rows.append(f"{name}\t{c['smiles']}\t{label}\t{group_of(c)}\t{c['source']}\t{','.join(c['families'])}")
    files = {}
    for stem, entries in sorted(lines.items()):
        files[stem] = []
        for part, start in enumerate(range(0, len(entries), chunk)):
            path = out / f"{stem}-{part:02d}.smi"
            path.write_text("\n".join(entries[start:start + chunk]) + "\n", encoding="utf-8")
            files[stem].append(path)
    (out / "selection.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return files


def main(argv=None) -> int:
    RDLogger.DisableLog("rdApp.*")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("csv_files", nargs="+", help="CSV files with a 'smiles' (or 'mol') column")
    parser.add_argument("-o", "--output", required=True, help="folder for the .smi chunks and selection.tsv")
    parser.add_argument("--total", type=int, default=3600, help="molecules to pick in all (default 3600)")
    parser.add_argument("--family-quota", type=int, default=250,
                        help="molecules per family picked from the lists, on top of the enumerated ones (250)")
    parser.add_argument("--large", type=int, default=200, help="quota of molecules with > 35 heavy atoms (200)")
    parser.add_argument("--pbri", type=int, default=100, help="quota of molecules with P, Br or I (100)")
    parser.add_argument("--charged", type=int, default=400, help="quota of charged molecules (400)")
    parser.add_argument("--chunk", type=int, default=250, help="molecules per .smi file (250)")
    parser.add_argument("--exclude", nargs="*", default=None,
                        help="grappa_like-qm-v1 files whose molecules are excluded "
                             "(default: ../shared/data/*.h5 and ../shared/benchmarks/*.h5)")
    parser.add_argument("--benchmarks", nargs="*", default=None,
                        help="files whose molecules' tautomers are excluded too (default ../shared/benchmarks/*.h5)")
    parser.add_argument("--exclude-smi", nargs="*", default=None,
                        help=".smi lists whose molecules are excluded (default: data/train-v1/*.smi)")
    parser.add_argument("--held-out", default="../shared/data/held-out-inchikeys.txt",
                        help="InChIKeys held out for independent evaluation (first 14 characters compared)")
    parser.add_argument("--family-only-from", nargs="*", default=["tox21"],
                        help="CSV stems whose molecules only fill the family and P/Br/I quotas (default: tox21)")
    parser.add_argument("--seed", type=int, default=20261203)
    args = parser.parse_args(argv)

    repo = Path(__file__).resolve().parent.parent
    benchmarks = args.benchmarks if args.benchmarks is not None else sorted(glob.glob("../shared/benchmarks/*.h5"))
    exclude = args.exclude if args.exclude is not None else sorted(glob.glob("../shared/data/*.h5")) + benchmarks
    exclude_smi = args.exclude_smi if args.exclude_smi is not None else sorted(glob.glob(str(repo / "data/train-v1/*.smi")))
    known = v1.excluded_keys(exclude) | smi_keys(exclude_smi)
    exclusion = Exclusion(known, benchmark_tautomer_keys(benchmarks), v1.held_out_blocks(args.held_out))
    print(f"excluding {len(known)} known molecules ({len(exclude)} HDF5 files, {len(exclude_smi)} .smi lists), "
          f"tautomers of {len(benchmarks)} benchmark files, {len(exclusion.held_out)} held-out InChIKey blocks",
          file=sys.stderr)
    enumerated = enumerated_pool(exclusion)
    pool = read_pool(args.csv_files, exclusion)
    print(f"pool: {len(pool)} candidates from the lists, {len(enumerated)} enumerated; excluded: "
          f"{dict(exclusion.counts)}", file=sys.stderr)
    print("family members in the pool (lists / enumerated): " + ", ".join(
        f"{f} {sum(f in c['families'] for c in pool)}/{sum(f in c['families'] for c in enumerated)}"
        for f in FAMILIES), file=sys.stderr)
    chosen = select(pool, enumerated, args.total, {f: args.family_quota for f in FAMILIES},
                    {"large": args.large, "pbri": args.pbri, "charged": args.charged}, args.seed,
                    frozenset(args.family_only_from))
    chosen, stereo_counts = fix_stereo(chosen, args.seed)
    print(f"stereo: {dict(stereo_counts)}", file=sys.stderr)
    files = write_lists(chosen, Path(args.output), args.chunk, args.seed)
    sources = Counter(v1.base_source(c) for c in chosen)
    print(f"chose {len(chosen)}: " + ", ".join(f"{stem} {sum(len(p.read_text().splitlines()) for p in paths)} "
                                             f"in {len(paths)} files" for stem, paths in files.items()), file=sys.stderr)
    print("by source: " + ", ".join(f"{s} {n}" for s, n in sources.most_common()), file=sys.stderr)
    print("by family: " + ", ".join(f"{f} {sum(f in c['families'] for c in chosen)}" for f in FAMILIES)
          + f"; charged {sum(Chem.GetFormalCharge(c['mol']) != 0 for c in chosen)}"
          + f"; > 35 heavy atoms {sum(c['mol'].GetNumHeavyAtoms() > 35 for c in chosen)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
