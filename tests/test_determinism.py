"""Determinism: the same input and model give byte-identical files, across runs, processes, thread
counts and batches.

The network runs in float64 and its outputs are rounded to float32 (:mod:`grappa_like.inference`),
so the last-bit differences of BLAS blocking (thread count, batch shape, CPU) never reach the
written parameters. See docs/reliability.md.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import openmm
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

import grappa_like
from grappa_like.cli import main

MOLECULES = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "glycine": "[NH3+]CC(=O)[O-]",
    "caffeine": "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "ibuprofen": "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "pyridine": "c1ccncc1",
    "acetonitrile": "CC#N",
}


def _write_inputs(folder) -> list[str]:
    sdf = folder / "three.sdf"
    writer = Chem.SDWriter(str(sdf))
    for index, name in enumerate(("aspirin", "glycine", "caffeine")):
        mol = Chem.AddHs(Chem.MolFromSmiles(MOLECULES[name]))
        AllChem.EmbedMolecule(mol, randomSeed=index + 1)
        mol.SetProp("_Name", name)
        writer.write(mol)
    writer.close()
    smi = folder / "more.smi"
    smi.write_text("".join(f"{MOLECULES[n]} {n}\n" for n in ("ibuprofen", "pyridine", "acetonitrile"))
                   + "C1CC broken\n")
    return [str(sdf), str(smi)]


def _tree_bytes(folder) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def _run_cli_in_subprocess(arguments, threads: int) -> int:
    command = [sys.executable, "-c", "import sys; from grappa_like.cli import main; sys.exit(main())",
               "parameterize", *arguments]
    environment = dict(os.environ, OMP_NUM_THREADS=str(threads))
    return subprocess.run(command, capture_output=True, env=environment, timeout=300).returncode


def test_cli_output_is_byte_identical_across_processes(model_file_path, tmp_path):
    inputs = _write_inputs(tmp_path)
    first, second = tmp_path / "first", tmp_path / "second"
    assert _run_cli_in_subprocess([*inputs, "-o", str(first), "--model", model_file_path], threads=1) == 1
    assert _run_cli_in_subprocess([*inputs, "-o", str(second), "--model", model_file_path], threads=2) == 1
    first_files, second_files = _tree_bytes(first), _tree_bytes(second)
    assert sorted(first_files) == ["acetonitrile.xml", "aspirin.xml", "caffeine.xml", "failures.tsv", "glycine.xml",
                                   "ibuprofen.xml", "pyridine.xml"]
    assert first_files == second_files


def test_one_molecule_alone_and_in_a_batch_give_identical_xml(model_file_path, tmp_path):
    inputs = _write_inputs(tmp_path)
    batch = tmp_path / "batch"
    assert main(["parameterize", *inputs, "-o", str(batch), "--model", model_file_path]) == 1
    for name, smiles in MOLECULES.items():
        if name in ("ibuprofen", "pyridine", "acetonitrile"):  # the .smi records: same SMILES, same atom order
            alone = tmp_path / f"{name}.xml"
            assert main(["parameterize", "--smiles", smiles, "-o", str(alone), "--model", model_file_path]) == 0
            assert alone.read_bytes() == (batch / f"{name}.xml").read_bytes(), name


def _xml(result) -> str:
    return openmm.XmlSerializer.serialize(result.to_openmm())


def test_batch_composition_order_and_size_do_not_change_the_xml(random_model):
    smiles = list(MOLECULES.values())
    alone = {s: _xml(grappa_like.parameterize([s], model=random_model, progress=False)[0]) for s in smiles}
    for batch in (smiles, smiles[::-1], smiles * 3, [smiles[0], "not a smiles", smiles[2]]):
        for small_batches in (1, 2, 256):
            results = grappa_like.parameterize(batch, model=random_model, progress=False, batch_size=small_batches)
            for item, result in zip(batch, results):
                if result.ok:
                    assert _xml(result) == alone[item], item


THREAD_SCRIPT = """
import sys, hashlib, openmm, grappa_like
smiles = sys.argv[2:]
results = grappa_like.parameterize(smiles * 8, model=sys.argv[1], progress=False)
print(hashlib.sha256(''.join(openmm.XmlSerializer.serialize(r.to_openmm()) for r in results).encode()).hexdigest())
"""


def test_thread_count_does_not_change_the_xml(model_file_path):
    """1, 2 and 4 BLAS/OpenMP threads, on a batch large enough for BLAS to split its products; and the
    allocator setting of :func:`grappa_like.inference.keep_freed_memory` on and off."""
    digests = set()
    for threads, keep_freed in (("1", "1"), ("2", "1"), ("4", "1"), ("1", "0")):
        environment = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
                           GRAPPA_LIKE_KEEP_FREED_MEMORY=keep_freed)
        finished = subprocess.run([sys.executable, "-c", THREAD_SCRIPT, model_file_path, *MOLECULES.values()],
                                  capture_output=True, text=True, env=environment, timeout=300)
        assert finished.returncode == 0, finished.stderr[-2000:]
        digests.add(finished.stdout.strip())
    assert len(digests) == 1


@pytest.mark.parametrize("output_format", ["ffxml", "gromacs", "amber"])
def test_other_formats_are_byte_identical_across_runs(output_format, model_file_path, tmp_path):
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / run
        assert main(["parameterize", "--smiles", MOLECULES["aspirin"], "--smiles", MOLECULES["glycine"],
                     "--format", output_format, "-o", str(out), "--model", model_file_path]) == 0
        outputs.append(_tree_bytes(out))
    assert len(outputs[0]) >= 3 and outputs[0] == outputs[1]


def test_keep_freed_memory_is_set_once_per_process_and_can_be_turned_off():
    script = ("import grappa_like; from grappa_like import inference; grappa_like.load_model(); "
              "print(inference._freed_memory_kept, inference.keep_freed_memory())")
    outputs = {}
    for setting in ("1", "0"):
        finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                                  env=dict(os.environ, GRAPPA_LIKE_KEEP_FREED_MEMORY=setting))
        assert finished.returncode == 0, finished.stderr[-2000:]
        outputs[setting] = finished.stdout.split()
    on_glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert outputs["1"] == ([str(on_glibc)] * 2)
    assert outputs["0"] == ["False", "False"]
