"""The package's layers: no import cycles, and nothing on the parameterize path imports torch.

Layers (docs/design-decisions.md, "Layers"): inference (no torch) at the bottom, then the writers,
exports and the OpenMM plugin, then the applications (CLI, library, report); training, dataset
building and evaluation beside them, importing inference but never imported by it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "grappa_like"

# modules that parameterizing a molecule may use; none of them may import torch or the training side
INFERENCE_SIDE = {
    "grappa_like", "grappa_like.api", "grappa_like.errors", "grappa_like.export", "grappa_like.features",
    "grappa_like.fileio", "grappa_like.inference", "grappa_like.interactions", "grappa_like.lj_types",
    "grappa_like.model_file", "grappa_like.molecule", "grappa_like.ood", "grappa_like.openmm",
    "grappa_like.outputs", "grappa_like.parameters", "grappa_like.units", "grappa_like.writers",
    "grappa_like.library", "grappa_like.cluster",
}
TRAINING_SIDE = {"grappa_like.model", "grappa_like.energy", "grappa_like.training", "grappa_like.evaluation",
                 "grappa_like.dataset", "grappa_like.data", "grappa_like.labelers", "grappa_like.benchmarks",
                 "grappa_like.baselines"}
TORCH = ("torch", "torch_geometric")
# the one allowed exception: a model file of the old torch formats 1-2 is read with torch, if installed
ALLOWED = {("grappa_like.model_file", "torch")}


def _module_files() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(path: Path, modules: dict) -> set[str]:
    """Every module imported anywhere in ``path`` (function-level imports too), resolved to modules."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else node.module)
    return found


def _import_graph() -> dict[str, set[str]]:
    modules = _module_files()
    return {name: _imports(path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return components


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    graph = _import_graph()
    # the package itself imports its public names lazily; an edge to it is not a dependency
    graph = {name: {t for t in targets if t != "grappa_like"} for name, targets in graph.items()}
    assert _cycles(graph) == []


def test_inference_side_never_imports_torch_training_or_the_cli():
    graph = _import_graph()
    assert INFERENCE_SIDE <= set(graph), INFERENCE_SIDE - set(graph)
    for name in INFERENCE_SIDE:
        forbidden = {t for t in graph[name] if (t.split(".")[0] in TORCH or t in TRAINING_SIDE
                                                or t.startswith("grappa_like.cli")) and (name, t) not in ALLOWED}
        assert not forbidden, f"{name} imports {sorted(forbidden)}"


BLOCK_TORCH = "import sys\nfor name in ('torch', 'torch_geometric'):\n    sys.modules[name] = None\n"


def _run_without_torch(code: str, tmp_path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter in which ``import torch`` fails."""
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)


def test_api_and_plugin_run_without_torch(tmp_path):
    code = (
        "import grappa_like, openmm\n"
        "from openmm import app\n"
        "from grappa_like.openmm import TemplateGenerator\n"
        "system = grappa_like.to_openmm('CC(=O)Oc1ccccc1C(=O)O')\n"
        "assert system.getNumParticles() == 21\n"
        "assert grappa_like.ood_score('CCO') is not None\n"
        "from grappa_like.molecule import from_smiles\n"
        "ethanol = from_smiles('CCO')\n"
        "generator = TemplateGenerator(molecules=[ethanol])\n"
        "forcefield = app.ForceField()\n"
        "forcefield.registerTemplateGenerator(generator.generator)\n"
        "topology = app.Topology()\n"
        "residue = topology.addResidue('LIG', topology.addChain())\n"
        "atoms = [topology.addAtom(f'A{i}', app.Element.getByAtomicNumber(int(z)), residue)\n"
        "         for i, z in enumerate(ethanol.atomic_numbers)]\n"
        "for bond in ethanol.rdkit_mol.GetBonds():\n"
        "    topology.addBond(atoms[bond.GetBeginAtomIdx()], atoms[bond.GetEndAtomIdx()])\n"
        "assert forcefield.createSystem(topology).getNumParticles() == 9\n"
        "print('ok')\n"
    )
    finished = _run_without_torch(code, tmp_path)
    assert finished.returncode == 0 and finished.stdout.strip() == "ok", finished.stderr[-2000:]


def test_cli_and_library_mode_run_without_torch(tmp_path):
    (tmp_path / "in.smi").write_text("CCO ethanol\nc1ccccc1O phenol\n")
    code = (
        "from grappa_like.cli import main\n"
        "assert main(['parameterize', '--smiles', 'CCO', '-o', 'one/ethanol.xml']) == 0\n"
        "assert main(['parameterize', 'in.smi', '-o', 'library', '--library']) == 0\n"
        "assert main(['train', '--data', 'x.h5', '--out', 'm.npz']) == 2\n"
        "print('ok')\n"
    )
    finished = _run_without_torch(code, tmp_path)
    assert finished.returncode == 0 and finished.stdout.strip() == "ok", finished.stderr[-2000:]
    assert (tmp_path / "one" / "ethanol.xml").exists()
    assert "pip install 'grappa_like[train]'" in finished.stderr


@pytest.mark.parametrize("module", sorted(INFERENCE_SIDE))
def test_each_inference_module_imports_without_torch(module, tmp_path):
    finished = _run_without_torch(f"import {module}\nprint('ok')\n", tmp_path)
    assert finished.returncode == 0, finished.stderr[-2000:]
