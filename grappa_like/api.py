"""Python API: load a model, parameterize molecules (GNN once per molecule, deterministic), build OpenMM Systems."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from rdkit import Chem
from torch_geometric.data import Batch

from grappa_like import errors, interactions as interactions_module, model_file, ood
from grappa_like.features import molecule_graph
from grappa_like.lj_types import LJTypeTable
from grappa_like.model import OUTPUT_ALIGNMENT, ForceFieldModel, split_per_molecule
from grappa_like.molecule import DEFAULT_MAX_ATOMS, Molecule, check_total_charge, shorten_name, to_molecule
from grappa_like.parameters import Parameters
from grappa_like.writers import to_openmm_system

DEFAULT_MODEL_NAME = "grappa-like-v2.pt"
# Largest batch (atoms) of one forward pass. 0: every molecule runs through the network alone, so its
# parameters are bit-for-bit independent of which other molecules are parameterized with it (float32
# matrix products round differently for different batch shapes). Batching is ~2x faster at inference.
INFERENCE_BATCH_ATOMS = 0


def default_model_path() -> str:
    """$GRAPPA_LIKE_MODEL if set, else the shipped ``models/grappa-like-v2.pt`` of this checkout."""
    if os.environ.get("GRAPPA_LIKE_MODEL"):
        return os.environ["GRAPPA_LIKE_MODEL"]
    return str(Path(__file__).resolve().parent.parent / "models" / DEFAULT_MODEL_NAME)


class Model:
    """A loaded grappa_like model: the network, its LJ type table and its metadata."""

    def __init__(self, network: ForceFieldModel, lj_table: LJTypeTable, metadata: dict | None = None,
                 path: str | None = None, members: list["Model"] | None = None):
        self.network = network.eval()
        self.lj_table = lj_table
        self.metadata = metadata or {}
        self.path = path
        self.members = members or []  # ensemble members (same config), for the out-of-domain score

    @classmethod
    def from_payload(cls, payload: dict, path: str | None = None) -> "Model":
        """Model from a verified model-file dict."""
        lj_table = LJTypeTable.from_dict(payload["lj_types"])
        network = ForceFieldModel(payload["config"], lj_table.atomic_numbers)
        network.load_state_dict(payload["state_dict"])
        members = []
        for state_dict in payload.get("ensemble", []):
            member = ForceFieldModel(payload["config"], lj_table.atomic_numbers)
            member.load_state_dict(state_dict)
            members.append(cls(member, lj_table))
        metadata = {k: v for k, v in payload.items() if k not in ("state_dict", "ensemble")}
        return cls(network, lj_table, metadata, path, members)

    @property
    def checksum(self) -> str:
        return self.metadata.get("sha256", "")

    @property
    def ood_threshold(self) -> float | None:
        """Out-of-domain score (kcal/mol/Å) above which ``parameterize`` warns; None without one."""
        return self.metadata.get("ensemble_metadata", {}).get("ood_threshold")

    @property
    def ood_settings(self) -> dict:
        """Conformer count and seed of the out-of-domain score (those the threshold was measured with)."""
        stored = self.metadata.get("ensemble_metadata", {}).get("score", {})
        return {"conformers": stored.get("conformers", ood.DEFAULT_CONFORMERS), "seed": stored.get("seed", ood.DEFAULT_SEED)}

    @torch.no_grad()
    def predict(self, molecules: list[Molecule]) -> list[Parameters]:
        """Parameters for each molecule; the GNN runs once per molecule (see INFERENCE_BATCH_ATOMS)."""
        graphs, all_interactions = [], []
        for molecule in molecules:
            interactions = interactions_module.from_rdkit(molecule.rdkit_mol)
            all_interactions.append(interactions)
            graphs.append(molecule_graph(molecule.rdkit_mol, interactions))
        results: list[Parameters] = []
        for chunk in _chunks_by_atoms(graphs, INFERENCE_BATCH_ATOMS):
            batch = Batch.from_data_list([graphs[i] for i in chunk])
            per_molecule = split_per_molecule(self.network(batch), [graphs[i] for i in chunk])
            results.extend(self._to_parameters(raw, all_interactions[i]) for raw, i in zip(per_molecule, chunk))
        return results

    def _to_parameters(self, raw: dict, interactions) -> Parameters:
        """Parameters (float64 numpy) of one molecule from its slice of the network output."""
        lj_class = raw["lj_logits"].argmax(-1).numpy()
        return Parameters(
            interactions=interactions,
            **{key: raw[key].double().numpy() for key in OUTPUT_ALIGNMENT if key != "lj_logits"},
            sigma=self.lj_table.sigma[lj_class],
            epsilon=self.lj_table.epsilon[lj_class],
            lj_types=tuple(self.lj_table.names[c] for c in lj_class),
        )


def _chunks_by_atoms(graphs, max_atoms: int):
    chunk, atoms = [], 0
    for index, graph in enumerate(graphs):
        if chunk and atoms + graph.num_nodes > max_atoms:
            yield chunk
            chunk, atoms = [], 0
        chunk.append(index)
        atoms += graph.num_nodes
    if chunk:
        yield chunk


_MODEL_CACHE: dict[str, Model] = {}


def load_model(path: str | None = None) -> Model:
    """Load (and cache per path) a model file; default: the shipped model."""
    path = str(path or default_model_path())
    if path not in _MODEL_CACHE:
        payload = model_file.load(path)
        try:
            _MODEL_CACHE[path] = Model.from_payload(payload, path)
        except Exception as error:  # a verified file whose content does not build this network
            message = " ".join(str(error).split())[:200]
            raise errors.ModelFileError(
                f"{path}: the model file does not fit this grappa_like ({type(error).__name__}: {message})") from None
    return _MODEL_CACHE[path]


@dataclass
class Result:
    """Outcome for one input: the molecule and its parameters, or the error that stopped it."""

    name: str
    molecule: Molecule | None = None
    parameters: Parameters | None = None
    error: Exception | None = None
    ood_score: float | None = None  # kcal/mol/Å; None unless asked for and the model has an ensemble

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_openmm(self):
        """OpenMM System of this result (raises the stored error if it failed)."""
        if self.error is not None:
            raise self.error
        return to_openmm_system(self.parameters, self.molecule.atomic_numbers)


def parameterize(molecules, model: Model | str | None = None, progress: bool = True,
                 max_atoms: int = DEFAULT_MAX_ATOMS, batch_size: int = 256,
                 total_charge: int | None = None, ood_score: bool = False) -> list[Result]:
    """One :class:`Result` per input (SMILES, RDKit Mol, openff Molecule, Molecule); bad inputs give errors.

    ``ood_score``: also compute :attr:`Result.ood_score` (see :mod:`grappa_like.ood`; about 0.1 s per
    molecule, so off by default) when the model has an ensemble; it stays None where no conformer
    can be embedded.

    ``total_charge`` (e), if given, is checked against the formal charges of every molecule
    (:class:`errors.ChargeMismatchError` when they differ). Nothing is printed except the progress bar.
    """
    if not isinstance(model, Model):
        model = load_model(model)
    if isinstance(molecules, (str, bytes, Molecule, Chem.Mol)) or not hasattr(molecules, "__iter__"):
        molecules = [molecules]
    results: list[Result] = []
    for index, item in enumerate(molecules):
        name = _input_name(item, index)
        try:
            molecule = to_molecule(item, name=None if isinstance(item, str) else name, max_atoms=max_atoms)
            molecule = check_total_charge(molecule, total_charge)
            results.append(Result(name=molecule.name, molecule=molecule))
        except errors.MoleculeInputError as error:
            results.append(Result(name=name, error=error))
        except Exception as error:  # a raw RDKit / openff exception: still one typed error for this input
            message = " ".join(str(error).split())[:200]
            results.append(Result(name=name, error=errors.UnparsableInputError(
                f"{name}: cannot read this input ({type(error).__name__}: {message})")))
    good = [r for r in results if r.ok]
    bar = _progress_bar(len(good), progress)
    for start in range(0, len(good), batch_size):
        chunk = good[start:start + batch_size]
        try:
            parameters = model.predict([r.molecule for r in chunk])
            for result, params in zip(chunk, parameters):
                result.parameters = params
        except Exception:  # one bad molecule must not sink the batch: retry one by one
            for result in chunk:
                try:
                    result.parameters = model.predict([result.molecule])[0]
                except Exception as error:
                    message = " ".join(str(error).split())[:200]
                    result.error = errors.ParameterizationError(
                        f"{result.name}: parameterization failed ({type(error).__name__}: {message})")
        if ood_score and model.members:
            for result in chunk:
                if result.ok:
                    result.ood_score = _ood_score_or_none(result, model)
        bar.update(len(chunk))
    bar.close()
    return results


def _ood_score_or_none(result: Result, model: Model) -> float | None:
    try:
        return ood.ood_score(result.molecule, model, parameters=result.parameters)
    except ValueError:  # no conformer could be embedded: no score, the parameters stand
        return None


def _input_name(item, index: int) -> str:
    """Name of an input for its Result before it is read: the SMILES, the molecule's title, else mol<index>."""
    if isinstance(item, str) and item.strip():
        return shorten_name(item.strip())
    if isinstance(item, Molecule):
        return item.name
    if isinstance(item, Chem.Mol) and item.HasProp("_Name") and item.GetProp("_Name").strip():
        return shorten_name(item.GetProp("_Name").strip())
    if type(item).__module__.startswith("openff.") and getattr(item, "name", ""):
        return shorten_name(item.name)
    return f"mol{index}"


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled or total < 2, desc="parameterize", unit="mol")


def to_openmm(molecule, model: Model | str | None = None):
    """OpenMM System for one molecule (SMILES, RDKit Mol, Molecule, or a :class:`Result`)."""
    if isinstance(molecule, Result):
        return molecule.to_openmm()
    result = parameterize([molecule], model=model, progress=False)[0]
    return result.to_openmm()
