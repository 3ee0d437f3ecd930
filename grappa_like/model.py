"""The graph network: a graph-attention encoder and symmetric heads that output MM parameters.

Every head is exactly invariant under the symmetry of its interaction: a bond (i, j) gets the
same parameters as (j, i) because the head sums f(i, j) + f(j, i); likewise for angles
(i, j, k) ~ (k, j, i), propers (i, j, k, l) ~ (l, k, j, i) and impropers (a, b, c, d) ~ (d, b, c, a).
Positivity and ranges hold by construction (exp, sigmoid, softplus), never by clipping.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Data
from torch_geometric.nn import GATv2Conv
from torch_geometric.utils import scatter

from grappa_like.features import INTERACTION_KEYS, N_ATOM_FEATURES, N_BOND_FEATURES, GraphArrays
from grappa_like.inference import (
    ANGLE_K_REFERENCE,
    ANGLE_THETA0_LOGIT,
    BOND_K_REFERENCE,
    BOND_R0_REFERENCE,
    DEFAULT_CONFIG,
    OUTPUT_ALIGNMENT,
    TORSION_K_SCALE,
)


def mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    """Two hidden layers with SiLU; the last layer starts at zero so a head starts at its reference."""
    last = nn.Linear(n_hidden, n_out)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.SiLU(), nn.Linear(n_hidden, n_hidden), nn.SiLU(), last)


class Encoder(nn.Module):
    """Graph-attention (GATv2, with bond features) message passing -> atom embeddings."""

    def __init__(self, width: int, n_layers: int, attention_heads: int):
        super().__init__()
        self.embed = nn.Linear(N_ATOM_FEATURES, width)
        self.convolutions = nn.ModuleList(
            GATv2Conv(width, width // attention_heads, heads=attention_heads, edge_dim=N_BOND_FEATURES)
            for _ in range(n_layers)
        )
        self.feed_forwards = nn.ModuleList(
            nn.Sequential(nn.Linear(width, 2 * width), nn.SiLU(), nn.Linear(2 * width, width))
            for _ in range(n_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(2 * n_layers))

    def forward(self, x, edge_index, edge_attr):
        h = torch.nn.functional.silu(self.embed(x))
        for index, (convolution, feed_forward) in enumerate(zip(self.convolutions, self.feed_forwards)):
            h = self.norms[2 * index](h + convolution(h, edge_index, edge_attr))
            h = self.norms[2 * index + 1](h + feed_forward(h))
        return h


class SymmetricHead(nn.Module):
    """f(h_order) + f(h_reversed order): exactly invariant under reversing the tuple."""

    def __init__(self, width: int, tuple_size: int, hidden: int, n_out: int, reversal):
        super().__init__()
        self.net = mlp(width * tuple_size, hidden, n_out)
        self.reversal = list(reversal)

    def forward(self, h, index):
        forward_input = h[index].flatten(1)
        reversed_input = h[index[:, self.reversal]].flatten(1)
        return self.net(forward_input) + self.net(reversed_input)


class ForceFieldModel(nn.Module):
    """Graph -> raw MM parameters for a (batched) :class:`MoleculeGraph`."""

    def __init__(self, config: dict, lj_class_atomic_numbers):
        super().__init__()
        self.config = dict(DEFAULT_CONFIG, **config)
        c = self.config
        width, hidden = c["width"], c["head_hidden"]
        self.encoder = Encoder(width, c["n_layers"], c["attention_heads"])
        self.bond_head = SymmetricHead(width, 2, hidden, 2, reversal=[1, 0])
        self.angle_head = SymmetricHead(width, 3, hidden, 2, reversal=[2, 1, 0])
        self.proper_head = SymmetricHead(width, 4, hidden, c["n_proper_periodicities"], reversal=[3, 2, 1, 0])
        self.improper_head = SymmetricHead(width, 4, hidden, c["n_improper_periodicities"], reversal=[3, 1, 2, 0])
        self.charge_head = mlp(width, hidden, 2)
        self.lj_head = mlp(width, hidden, len(lj_class_atomic_numbers))
        self.register_buffer("lj_class_atomic_numbers", torch.as_tensor(lj_class_atomic_numbers, dtype=torch.long))

    def forward(self, graph) -> dict:
        """Return a dict of parameter tensors aligned with graph.bonds / angles / propers / impropers / atoms."""
        h = self.encoder(graph.x, graph.edge_index, graph.edge_attr)
        bond_out = self.bond_head(h, graph.bonds)
        angle_out = self.angle_head(h, graph.angles)
        charge_out = self.charge_head(h)
        lj_logits = self.lj_head(h).masked_fill(
            graph.atomic_numbers[:, None] != self.lj_class_atomic_numbers[None, :], float("-inf")
        )
        batch = graph.batch if getattr(graph, "batch", None) is not None else torch.zeros(
            graph.num_nodes, dtype=torch.long, device=h.device)
        return {
            "bond_k": BOND_K_REFERENCE * torch.exp(bond_out[:, 0]),
            "bond_r0": BOND_R0_REFERENCE * torch.exp(0.2 * bond_out[:, 1]),
            "angle_k": ANGLE_K_REFERENCE * torch.exp(angle_out[:, 0]),
            "angle_theta0": math.pi * torch.sigmoid(angle_out[:, 1] + ANGLE_THETA0_LOGIT),
            "proper_k": TORSION_K_SCALE * self.proper_head(h, graph.propers),
            "improper_k": TORSION_K_SCALE * self.improper_head(h, graph.impropers),
            "charges": charge_equilibration(
                electronegativity=charge_out[:, 0],
                hardness=torch.nn.functional.softplus(charge_out[:, 1]) + 0.5,
                batch=batch,
                total_charge=graph.total_charge,
            ),
            "lj_logits": lj_logits,
        }


def network_from_weights(config: dict, weights: dict, lj_class_atomic_numbers) -> ForceFieldModel:
    """A float32 torch network (eval mode) holding the numpy ``weights`` of a model file."""
    network = ForceFieldModel(config, lj_class_atomic_numbers)
    network.load_state_dict({name: torch.from_numpy(np.array(value)) for name, value in weights.items()})
    return network.eval()


def torch_network(model) -> ForceFieldModel:
    """The float32 torch network of a loaded :class:`grappa_like.api.Model` (for training and evaluation)."""
    return network_from_weights(model.network.config, model.network.weights, model.lj_table.atomic_numbers)


class MoleculeGraph(Data):
    """PyG graph of one molecule with its interaction index arrays (offset correctly when batched)."""

    def __inc__(self, key, value, *args, **kwargs):
        if key in INTERACTION_KEYS:
            return self.num_nodes
        return super().__inc__(key, value, *args, **kwargs)

    def __cat_dim__(self, key, value, *args, **kwargs):
        if key in INTERACTION_KEYS:
            return 0
        return super().__cat_dim__(key, value, *args, **kwargs)


def torch_graph(graph: GraphArrays) -> MoleculeGraph:
    """The PyG form of one molecule's :class:`~grappa_like.features.GraphArrays` (for training)."""
    return MoleculeGraph(
        x=torch.from_numpy(graph.x),
        edge_index=torch.from_numpy(graph.edge_index),
        edge_attr=torch.from_numpy(graph.edge_attr),
        atomic_numbers=torch.from_numpy(graph.atomic_numbers),
        total_charge=torch.from_numpy(graph.total_charge),
        **{key: torch.from_numpy(getattr(graph, key)) for key in INTERACTION_KEYS},
        num_nodes=graph.num_nodes,
    )


def split_per_molecule(raw: dict, graphs) -> list[dict]:
    """Cut the batched outputs of :class:`ForceFieldModel` into one dict per molecule graph (in order)."""
    counts = {"atoms": [graph.num_nodes for graph in graphs]}
    for key in ("bonds", "angles", "propers", "impropers"):
        counts[key] = [len(getattr(graph, key)) for graph in graphs]
    pieces = {key: torch.split(raw[key], counts[group]) for key, group in OUTPUT_ALIGNMENT.items()}
    return [{key: pieces[key][index] for key in OUTPUT_ALIGNMENT} for index in range(len(graphs))]


def charge_equilibration(electronegativity, hardness, batch, total_charge):
    """Charges (e, float64) minimising Σ χ q + ½ η q² under Σ q = total charge per molecule (closed form)."""
    chi = electronegativity.double()
    inverse_eta = 1.0 / hardness.double()
    n_molecules = total_charge.shape[0]
    sum_inverse_eta = scatter(inverse_eta, batch, dim=0, dim_size=n_molecules, reduce="sum")
    sum_chi_over_eta = scatter(chi * inverse_eta, batch, dim=0, dim_size=n_molecules, reduce="sum")
    multiplier = (total_charge.double() + sum_chi_over_eta) / sum_inverse_eta
    return (multiplier[batch] - chi) * inverse_eta
