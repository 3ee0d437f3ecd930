"""Shared fixtures: a small random model (no training, no AmberTools needed) and its model file.

Also the ``--runslow`` option: tests marked ``slow`` are skipped unless it is given.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grappa_like import errors
from grappa_like.lj_types import LJTypeTable

SMALL_CONFIG = {"width": 32, "n_layers": 2, "attention_heads": 4, "head_hidden": 32}
RANDOM_SEED = 20240531
LAST_LAYER_STD = 0.05


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long checks; run with --runslow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow test: give --runslow to run it")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip_slow)


# (name, element, sigma nm, epsilon kJ/mol): two classes for H, C, N, O so the classifier has a choice.
_HAND_MADE_LJ_CLASSES = (
    ("hc", 1, 0.2600, 0.0870),
    ("ho", 1, 0.0538, 0.0197),
    ("c3", 6, 0.3398, 0.4510),
    ("c2", 6, 0.3315, 0.4134),
    ("n3", 7, 0.3365, 0.3590),
    ("n4", 7, 0.2500, 16.2122),
    ("o", 8, 0.3048, 0.6121),
    ("oh", 8, 0.3243, 0.3891),
    ("f", 9, 0.3034, 0.3481),
    ("p5", 15, 0.3694, 0.9602),
    ("ss", 16, 0.3532, 1.1816),
    ("cl", 17, 0.3466, 1.1037),
    ("br", 35, 0.3613, 1.6451),
    ("i", 53, 0.3841, 2.0732),
)


def hand_made_lj_table() -> LJTypeTable:
    """A small LJ type table covering every supported element (used when gaff2.dat is absent)."""
    return LJTypeTable(
        names=tuple(row[0] for row in _HAND_MADE_LJ_CLASSES),
        atomic_numbers=np.array([row[1] for row in _HAND_MADE_LJ_CLASSES], dtype=np.int64),
        sigma=np.array([row[2] for row in _HAND_MADE_LJ_CLASSES], dtype=np.float64),
        epsilon=np.array([row[3] for row in _HAND_MADE_LJ_CLASSES], dtype=np.float64),
        gaff2_type_to_class={row[0]: index for index, row in enumerate(_HAND_MADE_LJ_CLASSES)},
    )


@pytest.fixture(scope="session")
def lj_table() -> LJTypeTable:
    """GAFF2 LJ classes from AmberTools' gaff2.dat when installed, else a hand-made table."""
    from grappa_like import lj_types

    try:
        lj_types.find_gaff2_dat()
    except errors.MissingDependencyError:
        return hand_made_lj_table()
    return lj_types.read_gaff2_lj_table()


def _randomize_last_layers(network, seed: int, std: float) -> None:
    """Give the zero-initialised last layer of every head small random weights (seeded).

    The hidden layers of the heads get unit-variance (1/sqrt(fan_in)) normal weights so that the
    outputs differ clearly between non-equivalent atoms / interactions.
    """
    generator = torch.Generator().manual_seed(seed)
    heads = (
        network.bond_head.net, network.angle_head.net, network.proper_head.net, network.improper_head.net,
        network.charge_head, network.lj_head,
    )
    with torch.no_grad():
        for head in heads:
            for layer in head[:-1]:
                if isinstance(layer, torch.nn.Linear):
                    layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) / layer.in_features ** 0.5)
            last = head[-1]
            last.weight.copy_(torch.randn(last.weight.shape, generator=generator) * std)
            last.bias.copy_(torch.randn(last.bias.shape, generator=generator) * std)


def build_random_network(lj_table: LJTypeTable, seed: int = RANDOM_SEED):
    from grappa_like.model import ForceFieldModel

    torch.manual_seed(seed)
    network = ForceFieldModel(SMALL_CONFIG, lj_table.atomic_numbers)
    _randomize_last_layers(network, seed + 1, LAST_LAYER_STD)
    return network.eval()


@pytest.fixture(scope="session")
def random_payload(lj_table) -> dict:
    """Model-file payload (without version / checksum) of a freshly initialised small network."""
    network = build_random_network(lj_table)
    return {
        "config": dict(network.config),
        "state_dict": {key: value.detach().clone() for key, value in network.state_dict().items()},
        "lj_types": lj_table.to_dict(),
        "validation_molecules": ["validation-molecule-a", "validation-molecule-b"],
        "training_data": {"description": "none: random weights for tests"},
        "metrics": {"note": "untrained"},
    }


@pytest.fixture(scope="session")
def random_model(random_payload):
    """A :class:`grappa_like.api.Model` with random (untrained) but non-trivial parameters."""
    from grappa_like.api import Model

    torch.set_num_threads(1)
    return Model.from_payload(random_payload)


@pytest.fixture(scope="session")
def model_file_path(random_payload, tmp_path_factory) -> str:
    """The random model written with :func:`grappa_like.model_file.save`."""
    from grappa_like import model_file

    path = tmp_path_factory.mktemp("models") / "random-model.npz"
    model_file.save(str(path), random_payload)
    return str(path)
