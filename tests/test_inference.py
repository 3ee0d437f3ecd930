"""The numpy network (grappa_like.inference) computes the torch network's function (grappa_like.model).

Both run in float64 on the same weights, for the random test model and the shipped model, on a few
hundred varied molecules (training-data drug-like molecules and peptides, charged molecules, P, Br,
I, rings, linear groups): every parameter within 1e-6 relative, and the same LJ types.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import grappa_like
from grappa_like import interactions
from grappa_like.api import default_model_path
from grappa_like.features import concatenate_graphs, molecule_graph
from grappa_like.inference import round_charges, round_to_float32, silu, softplus
from grappa_like.molecule import from_smiles

torch = pytest.importorskip("torch")
from grappa_like.model import network_from_weights, torch_graph  # noqa: E402  (needs torch)

EXTRA_SMILES = [
    "[NH3+]CC(=O)[O-]", "CC(=O)[O-]", "C[NH3+]", "NC(=[NH2+])N", "c1cc[nH+]cc1", "OP(=O)([O-])[O-]",
    "COP(=O)(OC)OC", "CP(C)(C)=O", "OP(=O)(O)OCc1ccc(Br)cc1I", "Brc1ccc(I)cc1", "ICCBr", "CC(=O)Nc1ccc(O)cc1",
    "CS(=O)(=O)Nc1ccccc1", "O=S(=O)([O-])c1ccccc1", "CC#N", "C#CC", "N#Cc1ccccc1C#N", "C=C=C", "FC(F)(F)c1ccccc1",
    "CC(C)(C)OC(=O)N[C@@H](C)C(=O)NC", "CC(=O)N[C@@H](Cc1c[nH]c2ccccc12)C(=O)NC", "CC(=O)N[C@@H](CCCC[NH3+])C(=O)NC",
    "CC(=O)N[C@@H](CC(=O)[O-])C(=O)NC", "CC(=O)N[C@@H](CS)C(=O)NC", "CC(=O)CC(C)=O", "CC(O)=CC(C)=O",
    "c1ccc(-c2ccccc2)cc1", "CN=Nc1ccccc1", "C1CC1", "C1CCC1", "O=C1CCCCCC1", "C1CCCCCCC1", "[O-][n+]1ccccc1",
    "C[N+](C)(C)C", "O", "C", "Cl", "S", "CSSC", "O=[N+]([O-])c1ccccc1",
]


TRAIN_FILE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "train-v0.h5")


def _training_smiles(limit: int) -> list[str]:
    """SMILES of ``limit`` molecules spread over the training file (none if it is not there)."""
    import h5py

    if not os.path.exists(TRAIN_FILE):
        return []
    with h5py.File(TRAIN_FILE) as handle:
        keys = sorted(handle.keys())
        step = max(len(keys) // limit, 1)
        return [handle[key].attrs["smiles"] for key in keys[::step][:limit]]


def _molecules():
    smiles = EXTRA_SMILES + _training_smiles(260)
    return [from_smiles(s) for s in smiles]


def _assert_parity(model, molecules):
    torch_network = network_from_weights(model.network.config, {k: v.astype(np.float32) if v.dtype == np.float64
                                                                 else v for k, v in model.network.weights.items()},
                                         model.lj_table.atomic_numbers).double()
    torch_network.load_state_dict({k: torch.from_numpy(v) for k, v in model.network.weights.items()})
    for molecule in molecules:
        graph = molecule_graph(molecule.rdkit_mol, interactions.from_rdkit(molecule.rdkit_mol))
        ours = model.network(graph)
        batch = torch_graph(graph)
        batch.x, batch.edge_attr = batch.x.double(), batch.edge_attr.double()
        with torch.no_grad():
            theirs = {key: value.numpy() for key, value in torch_network(batch).items()}
        for key, value in theirs.items():
            finite = np.isfinite(value)
            assert np.array_equal(finite, np.isfinite(ours[key])), (molecule.smiles, key)
            scale = np.abs(value[finite]).max(initial=0.0) + 1e-30
            np.testing.assert_allclose(ours[key][finite], value[finite], rtol=1e-6, atol=1e-9 * scale,
                                       err_msg=f"{molecule.smiles}: {key}")
        np.testing.assert_array_equal(ours["lj_logits"].argmax(-1), theirs["lj_logits"].argmax(-1))


def test_numpy_network_equals_torch_network_random_model(random_model):
    _assert_parity(random_model, _molecules())


@pytest.mark.skipif(not os.path.exists(default_model_path()), reason="no shipped model")
def test_numpy_network_equals_torch_network_shipped_model():
    _assert_parity(grappa_like.load_model(), _molecules())


def test_batched_forward_equals_one_by_one_after_rounding(random_model):
    molecules = _molecules()[:80]
    graphs = [molecule_graph(m.rdkit_mol, interactions.from_rdkit(m.rdkit_mol)) for m in molecules]
    together = random_model.network(concatenate_graphs(graphs))
    offsets = np.cumsum([0] + [g.num_nodes for g in graphs])
    for index, graph in enumerate(graphs):
        alone = random_model.network(graph)
        atoms = slice(offsets[index], offsets[index + 1])
        np.testing.assert_array_equal(round_to_float32(together["charges"][atoms]),
                                      round_to_float32(alone["charges"]))


def test_activation_functions_match_their_definitions():
    x = np.linspace(-60, 60, 2001)
    np.testing.assert_allclose(silu(x), x / (1 + np.exp(-x)), rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(softplus(x), np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20)))), rtol=1e-15)
    assert np.all(np.isfinite(silu(np.array([-1e308, 1e308]))))


def test_rounded_charges_keep_the_total_exactly_and_symmetry():
    charges = np.array([0.1234567891234, -0.3333333333333, 0.1234567891234, 0.0864197550865])
    rounded = round_charges(charges, 0)
    assert abs(sum(rounded)) < 1e-15
    assert rounded[0] == rounded[2]
    np.testing.assert_allclose(rounded, charges, atol=1e-7)
