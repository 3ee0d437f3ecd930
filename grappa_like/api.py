"""Python API: load a model, parameterize molecules (batched numpy inference, deterministic), build OpenMM Systems."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from rdkit import Chem

from grappa_like import errors, interactions as interactions_module, model_file, ood
from grappa_like.features import N_ATOM_FEATURES, N_BOND_FEATURES, GraphArrays, concatenate_graphs, molecule_graph
from grappa_like.inference import OUTPUT_ALIGNMENT, Network, round_charges, round_to_float32
from grappa_like.lj_types import LJTypeTable
from grappa_like.molecule import DEFAULT_MAX_ATOMS, Molecule, check_total_charge, shorten_name, to_molecule
from grappa_like.parameters import Parameters
from grappa_like.writers import to_openmm_system

DEFAULT_MODEL_NAME = "grappa-like-v2.npz"
# Largest batch (atoms) of one forward pass of the network. Outputs are computed in float64 and
# rounded to float32, so they do not depend on which molecules share a batch (docs/reliability.md).
# 256 atoms measured fastest (docs/performance.md): larger batches pay for large temporary arrays.
INFERENCE_BATCH_ATOMS = 256


def default_model_path() -> str:
    """$GRAPPA_LIKE_MODEL if set, else the shipped model installed with the package (package data)."""
    if os.environ.get("GRAPPA_LIKE_MODEL"):
        return os.environ["GRAPPA_LIKE_MODEL"]
    from importlib.resources import files

    try:
        return str(files("grappa_like.models") / DEFAULT_MODEL_NAME)
    except ModuleNotFoundError:  # a source checkout on sys.path without installing: models/ beside the package
        return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models", DEFAULT_MODEL_NAME)


class Model:
    """A loaded grappa_like model: the network (numpy), its LJ type table and its metadata."""

    def __init__(self, network: Network, lj_table: LJTypeTable, metadata: dict | None = None,
                 path: str | None = None, members: list["Model"] | None = None):
        self.network = network
        self.lj_table = lj_table
        self.metadata = metadata or {}
        self.path = path
        self.members = members or []  # ensemble members (same config), for the out-of-domain score

    @classmethod
    def from_payload(cls, payload: dict, path: str | None = None) -> "Model":
        """Model from a verified model-file dict (weights as numpy arrays or torch tensors)."""
        lj_table = LJTypeTable.from_dict(payload["lj_types"])
        network = Network(payload["config"], model_file.as_arrays(payload["state_dict"]), lj_table.atomic_numbers)
        members = [cls(Network(payload["config"], model_file.as_arrays(state_dict), lj_table.atomic_numbers), lj_table)
                   for state_dict in payload.get("ensemble", [])]
        for candidate in [network] + [member.network for member in members]:
            candidate(_probe_graph())  # weights that do not fit the config fail here, at load
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

    def predict(self, molecules: list[Molecule]) -> list[Parameters]:
        """Parameters for each molecule, rounded to float32: identical whether alone or in a batch."""
        graphs, all_interactions = [], []
        for molecule in molecules:
            interactions = interactions_module.from_rdkit(molecule.rdkit_mol)
            all_interactions.append(interactions)
            graphs.append(molecule_graph(molecule.rdkit_mol, interactions))
        results: list[Parameters] = []
        for chunk in _chunks_by_atoms(graphs, INFERENCE_BATCH_ATOMS):
            chunk_graphs = [graphs[i] for i in chunk]
            raw = self.network(concatenate_graphs(chunk_graphs))
            for index, piece in zip(chunk, _split_per_molecule(raw, chunk_graphs)):
                results.append(self._to_parameters(piece, all_interactions[index], graphs[index].total_charge[0]))
        return results

    def _to_parameters(self, raw: dict, interactions, total_charge: float) -> Parameters:
        """Parameters of one molecule from its slice of the network output, at the written precision."""
        lj_class = raw["lj_logits"].argmax(-1)
        return Parameters(
            interactions=interactions,
            **{key: round_to_float32(raw[key]) for key in OUTPUT_ALIGNMENT if key not in ("lj_logits", "charges")},
            charges=round_charges(raw["charges"], total_charge),
            sigma=self.lj_table.sigma[lj_class],
            epsilon=self.lj_table.epsilon[lj_class],
            lj_types=tuple(self.lj_table.names[c] for c in lj_class),
        )


def _probe_graph() -> GraphArrays:
    """A five-atom carbon graph with every kind of interaction, to check a network's weights on."""
    interactions = interactions_module.from_bonds(5, [(0, 1), (1, 2), (2, 3), (1, 4)])
    edge_index = np.concatenate([interactions.bonds, interactions.bonds[:, ::-1]]).T.copy()
    return GraphArrays(
        x=np.zeros((5, N_ATOM_FEATURES), dtype=np.float32), edge_index=edge_index,
        edge_attr=np.zeros((edge_index.shape[1], N_BOND_FEATURES), dtype=np.float32),
        atomic_numbers=np.full(5, 6), total_charge=np.zeros(1), bonds=interactions.bonds, angles=interactions.angles,
        propers=interactions.propers, impropers=interactions.impropers, batch=np.zeros(5, dtype=np.int64))


def _split_per_molecule(raw: dict, graphs) -> list[dict]:
    """Cut the outputs of one forward pass over concatenated graphs into one dict per molecule."""
    bounds = {"atoms": np.cumsum([graph.num_nodes for graph in graphs])[:-1]}
    for key in ("bonds", "angles", "propers", "impropers"):
        bounds[key] = np.cumsum([len(getattr(graph, key)) for graph in graphs])[:-1]
    pieces = {key: np.split(raw[key], bounds[group]) for key, group in OUTPUT_ALIGNMENT.items()}
    return [{key: pieces[key][index] for key in OUTPUT_ALIGNMENT} for index in range(len(graphs))]


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


def ood_score(molecule, model: Model | str | None = None, parameters: Parameters | None = None,
              positions_nm: np.ndarray | None = None) -> float | None:
    """Out-of-domain score (kcal/mol/Å) of one molecule, or None if the model has no ensemble.

    ``molecule``: anything :func:`~grappa_like.molecule.to_molecule` reads; ``model``: a :class:`Model`,
    a model file path, or None (the shipped model); ``parameters``: the main network's parameters if
    already computed; ``positions_nm``: conformers to use instead of the model's ETKDG settings.
    Raises ValueError if no conformer can be embedded. See :mod:`grappa_like.ood`.
    """
    if not isinstance(model, Model):
        model = load_model(model)
    if not isinstance(molecule, Molecule):
        molecule = to_molecule(molecule)
    return ood.ensemble_force_spread(molecule, model, parameters=parameters, positions_nm=positions_nm)


def _ood_score_or_none(result: Result, model: Model) -> float | None:
    try:
        return ood.ensemble_force_spread(result.molecule, model, parameters=result.parameters)
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
