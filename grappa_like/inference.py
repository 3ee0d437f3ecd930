"""The trained network evaluated in numpy (float64): what parameterizing a molecule runs, with no torch.

It computes exactly the function of :class:`grappa_like.model.ForceFieldModel` (the torch network
that training uses) from the same weights: GATv2 attention layers with bond features and self
loops, feed-forward blocks and layer norms, then the symmetric heads. ``tests/test_inference.py``
holds the two together. Evaluating in float64 and rounding the outputs to float32 afterwards
(:func:`round_parameters`) makes the written parameters independent of BLAS blocking, thread
count, batch composition and CPU (docs/design-decisions.md, "Inference without torch").

The first layer of a symmetric head is linear in the concatenated atom embeddings, so it is
computed once per atom and position (``h @ W_position``) and summed per tuple; every tuple then
costs only the head's second and third layers.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys

import numpy as np

DEFAULT_CONFIG = {
    "width": 128,
    "n_layers": 4,
    "attention_heads": 4,
    "head_hidden": 128,
    "n_proper_periodicities": 4,
    "n_improper_periodicities": 2,
}

# Reference values the heads start from (OpenMM units); the network predicts log-ratios to them.
BOND_K_REFERENCE = 3.0e5       # kJ/mol/nm²
BOND_R0_REFERENCE = 0.13       # nm
ANGLE_K_REFERENCE = 500.0      # kJ/mol/rad²
ANGLE_THETA0_START = math.radians(110.0)
ANGLE_THETA0_LOGIT = math.log(ANGLE_THETA0_START / (math.pi - ANGLE_THETA0_START))
TORSION_K_SCALE = 4.0          # kJ/mol per unit of network output
MINIMUM_HARDNESS = 0.5

# which index array each network output is aligned with
OUTPUT_ALIGNMENT = {"bond_k": "bonds", "bond_r0": "bonds", "angle_k": "angles", "angle_theta0": "angles",
                    "proper_k": "propers", "improper_k": "impropers", "charges": "atoms", "lj_logits": "atoms"}

# tuple reversal under which each head is symmetric (see grappa_like.model)
HEAD_REVERSALS = {"bond_head": (1, 0), "angle_head": (2, 1, 0), "proper_head": (3, 2, 1, 0),
                  "improper_head": (3, 1, 2, 0)}
_LAYER_NORM_EPSILON = 1e-5
_ATTENTION_NEGATIVE_SLOPE = 0.2


# glibc mallopt parameters (malloc.h) and the values keep_freed_memory sets
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
KEPT_FREED_BYTES = 128 * 2**20
MMAP_THRESHOLD_BYTES = 32 * 2**20
_freed_memory_kept = False


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for reuse instead of returning it to the kernel at once.

    The network's temporaries (0.1-10 MB per array) are above glibc's initial mmap threshold and the
    freed top of the heap is trimmed, so every array of every layer gets fresh pages, and a page fault
    costs microseconds on a virtual machine: on the 2-core build machine this made an elementwise
    operation on a 0.7 MB array 16x slower than on reused memory, and the network 1.6x slower
    (docs/performance.md, "Memory reuse"). This sets M_MMAP_THRESHOLD to 32 MiB and M_TRIM_THRESHOLD to
    128 MiB for the whole process, once: the process keeps up to 128 MiB of freed heap. No effect (and
    False) off Linux/glibc or with ``GRAPPA_LIKE_KEEP_FREED_MEMORY=0``; values are unchanged either way.
    """
    global _freed_memory_kept
    if _freed_memory_kept:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("GRAPPA_LIKE_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl or another C library: leave its allocator alone
        return False
    _freed_memory_kept = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, KEPT_FREED_BYTES))
    return _freed_memory_kept


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e⁻ˣ); e⁻ˣ may overflow to inf for x < -709, which gives the right limit 0."""
    with np.errstate(over="ignore"):
        out = np.exp(-x)
    out += 1.0
    return np.reciprocal(out, out=out)


def silu(x: np.ndarray) -> np.ndarray:
    """x·sigmoid(x)."""
    out = sigmoid(x)
    out *= x
    return out


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + eˣ), returning x above 20 as torch does."""
    return np.where(x > 20.0, x, np.log1p(np.exp(np.minimum(x, 20.0))))


class Network:
    """Numpy float64 evaluation of a trained network from its weights (a state dict of arrays)."""

    def __init__(self, config: dict, weights: dict[str, np.ndarray], lj_class_atomic_numbers):
        keep_freed_memory()
        self.config = dict(DEFAULT_CONFIG, **config)
        self.weights = {name: np.asarray(value, dtype=np.float64) for name, value in weights.items()}
        # transposed copies of the linear layers' weights, contiguous for the matrix products
        self._transposed = {name: np.ascontiguousarray(value.T) for name, value in self.weights.items()
                            if name.endswith(".weight") and value.ndim == 2}
        self.lj_class_atomic_numbers = np.asarray(lj_class_atomic_numbers, dtype=np.int64)
        missing = self._expected_weight_names() - set(self.weights)
        if missing:
            raise KeyError(f"weights missing from the model: {', '.join(sorted(missing)[:5])}")

    def _expected_weight_names(self) -> set[str]:
        names = {"encoder.embed.weight", "encoder.embed.bias"}
        for layer in range(self.config["n_layers"]):
            names |= {f"encoder.convolutions.{layer}.{part}" for part in (
                "lin_l.weight", "lin_l.bias", "lin_r.weight", "lin_r.bias", "lin_edge.weight", "att", "bias")}
        for head in list(HEAD_REVERSALS) + ["charge_head", "lj_head"]:
            prefix = f"{head}.net" if head in HEAD_REVERSALS else head
            names |= {f"{prefix}.{index}.{part}" for index in (0, 2, 4) for part in ("weight", "bias")}
        return names

    def _linear(self, x: np.ndarray, name: str, bias: bool = True) -> np.ndarray:
        out = x @ self._transposed[f"{name}.weight"]
        if bias:
            out += self.weights[f"{name}.bias"]
        return out

    def _layer_norm(self, x: np.ndarray, name: str) -> np.ndarray:
        centred = x - x.mean(axis=1, keepdims=True)
        variance = (centred * centred).mean(axis=1, keepdims=True)
        return centred / np.sqrt(variance + _LAYER_NORM_EPSILON) * self.weights[f"{name}.weight"] + self.weights[f"{name}.bias"]

    def _attention(self, h: np.ndarray, layer: int, edges: "_Edges") -> np.ndarray:
        """One GATv2 layer: attention over each atom's bonded neighbours and itself."""
        name = f"encoder.convolutions.{layer}"
        heads = self.config["attention_heads"]
        channels = self.config["width"] // heads
        source_values = self._linear(h, f"{name}.lin_l").reshape(-1, heads, channels)
        target_values = self._linear(h, f"{name}.lin_r").reshape(-1, heads, channels)
        edge_values = self._linear(edges.attributes, f"{name}.lin_edge", bias=False).reshape(-1, heads, channels)
        messages = source_values[edges.source]
        pre_activation = messages + target_values[edges.target]
        pre_activation += edge_values
        activated = np.maximum(pre_activation, _ATTENTION_NEGATIVE_SLOPE * pre_activation)  # leaky ReLU
        scores = np.einsum("ehc,hc->eh", activated, self.weights[f"{name}.att"][0])  # (n_edges, heads)
        scores = np.exp(scores - np.maximum.reduceat(scores, edges.starts, axis=0)[edges.target])
        weights = scores / (np.add.reduceat(scores, edges.starts, axis=0)[edges.target] + 1e-16)
        messages *= weights[:, :, None]
        return np.add.reduceat(messages, edges.starts, axis=0).reshape(-1, heads * channels) + self.weights[f"{name}.bias"]

    def encode(self, graph) -> np.ndarray:
        """Atom embeddings (n_atoms, width) of a :class:`~grappa_like.features.GraphArrays`."""
        edges = _Edges.with_self_loops(graph)
        h = silu(self._linear(graph.x.astype(np.float64), "encoder.embed"))
        for layer in range(self.config["n_layers"]):
            h = self._layer_norm(h + self._attention(h, layer, edges), f"encoder.norms.{2 * layer}")
            feed_forward = f"encoder.feed_forwards.{layer}"
            update = self._linear(silu(self._linear(h, f"{feed_forward}.0")), f"{feed_forward}.2")
            h = self._layer_norm(h + update, f"encoder.norms.{2 * layer + 1}")
        return h

    def _mlp_tail(self, hidden: np.ndarray, name: str) -> np.ndarray:
        """Second and last layer of a head, given the first layer's pre-activation."""
        return self._linear(silu(self._linear(silu(hidden), f"{name}.2")), f"{name}.4")

    def _symmetric_head(self, h: np.ndarray, index: np.ndarray, name: str) -> np.ndarray:
        reversal = HEAD_REVERSALS[name]
        first = self._transposed[f"{name}.net.0.weight"]  # (width * tuple_size, hidden)
        width = h.shape[1]
        projected = [h @ first[position * width:(position + 1) * width] for position in range(len(reversal))]
        bias = self.weights[f"{name}.net.0.bias"]
        forward = sum(projected[position][index[:, position]] for position in range(len(reversal))) + bias
        backward = sum(projected[position][index[:, reversal[position]]] for position in range(len(reversal))) + bias
        return self._mlp_tail(forward, f"{name}.net") + self._mlp_tail(backward, f"{name}.net")

    def __call__(self, graph) -> dict[str, np.ndarray]:
        """Raw outputs (OpenMM units, float64) aligned with the graph's bonds / angles / ... / atoms."""
        h = self.encode(graph)
        bond_out = self._symmetric_head(h, graph.bonds, "bond_head")
        angle_out = self._symmetric_head(h, graph.angles, "angle_head")
        charge_out = self._mlp_tail(self._linear(h, "charge_head.0"), "charge_head")
        lj_logits = self._mlp_tail(self._linear(h, "lj_head.0"), "lj_head")
        allowed = graph.atomic_numbers[:, None] == self.lj_class_atomic_numbers[None, :]
        return {
            "bond_k": BOND_K_REFERENCE * np.exp(bond_out[:, 0]),
            "bond_r0": BOND_R0_REFERENCE * np.exp(0.2 * bond_out[:, 1]),
            "angle_k": ANGLE_K_REFERENCE * np.exp(angle_out[:, 0]),
            "angle_theta0": math.pi * sigmoid(angle_out[:, 1] + ANGLE_THETA0_LOGIT),
            "proper_k": TORSION_K_SCALE * self._symmetric_head(h, graph.propers, "proper_head"),
            "improper_k": TORSION_K_SCALE * self._symmetric_head(h, graph.impropers, "improper_head"),
            "charges": charge_equilibration(charge_out[:, 0], softplus(charge_out[:, 1]) + MINIMUM_HARDNESS,
                                            graph.batch, graph.total_charge),
            "lj_logits": np.where(allowed, lj_logits, -np.inf),
        }


class _Edges:
    """Edges sorted by target atom with one self loop per atom, as GATv2 aggregates them."""

    def __init__(self, source, target, attributes, n_atoms: int):
        order = np.argsort(target, kind="stable")
        self.source, self.target, self.attributes = source[order], target[order], attributes[order]
        self.starts = np.searchsorted(self.target, np.arange(n_atoms))

    @classmethod
    def with_self_loops(cls, graph) -> "_Edges":
        """Bonds in both directions plus a self loop per atom whose features are the mean of the
        atom's incoming edge features (zero for an atom without bonds), as PyG's ``fill_value='mean'``."""
        n_atoms = graph.num_nodes
        source, target = graph.edge_index
        attributes = graph.edge_attr.astype(np.float64)
        sums = np.zeros((n_atoms, attributes.shape[1]))
        np.add.at(sums, target, attributes)
        counts = np.bincount(target, minlength=n_atoms)[:, None]
        loop_attributes = sums / np.maximum(counts, 1)
        atoms = np.arange(n_atoms)
        return cls(np.concatenate([source, atoms]), np.concatenate([target, atoms]),
                   np.concatenate([attributes, loop_attributes]), n_atoms)


def charge_equilibration(electronegativity, hardness, batch, total_charge) -> np.ndarray:
    """Charges (e) minimising Σ χ q + ½ η q² under Σ q = total charge per molecule (closed form)."""
    inverse_hardness = 1.0 / hardness
    n_molecules = len(total_charge)
    sum_inverse_hardness = np.bincount(batch, weights=inverse_hardness, minlength=n_molecules)
    sum_ratio = np.bincount(batch, weights=electronegativity * inverse_hardness, minlength=n_molecules)
    multiplier = (np.asarray(total_charge, dtype=np.float64) + sum_ratio) / sum_inverse_hardness
    return (multiplier[batch] - electronegativity) * inverse_hardness


def round_to_float32(values: np.ndarray) -> np.ndarray:
    """``values`` rounded to the nearest float32, returned as float64: the written precision."""
    return np.asarray(values, dtype=np.float64).astype(np.float32).astype(np.float64)


def round_charges(charges: np.ndarray, total_charge: float) -> np.ndarray:
    """Charges rounded to float32, then shifted equally so that they sum to ``total_charge`` again."""
    rounded = round_to_float32(charges)
    if len(rounded):
        rounded += (float(total_charge) - math.fsum(rounded)) / len(rounded)
    return rounded
