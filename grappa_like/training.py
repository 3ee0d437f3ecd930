"""Training: fit the network to QM energies and forces (bonded terms), AM1-BCC charges and GAFF2 LJ types.

Loss per molecule (DESIGN.md), energies mean-centred per molecule, nonbonded energy detached:
    w_E·mean[(ΔE_bonded + ΔE_nb − ΔE_QM)²] + w_F·mean[(F_MM − F_QM)²]      (kcal/mol, kcal/mol/Å)
  + w_q·mean[(q − q_AM1BCC)²] + w_LJ·crossentropy(LJ logits, GAFF2 class) + w_torsion·mean[κ²]
Parameters depend on the graph only, so the GNN runs once per molecule for all its conformations.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch_geometric.data import Batch

from grappa_like import errors, interactions as interactions_module, model_file
from grappa_like.data import (DEFAULT_LABEL_PREFERENCE, QMRecord, keep_same_molecules_together, parse_data_spec,
                               read_data, split_per_file)
from grappa_like.energy import bonded_energy, energy_and_forces, nonbonded_energy, nonbonded_pairs
from grappa_like.features import molecule_graph
from grappa_like.fileio import atomic_write
from grappa_like.lj_types import LJTypeTable
from grappa_like.model import ForceFieldModel, split_per_molecule, torch_graph
from grappa_like.units import KJ_PER_NM_TO_KCAL_PER_ANGSTROM, KJ_TO_KCAL


@dataclass
class TrainingConfig:
    """Hyper-parameters of a training run (defaults are the shipped model's)."""

    epochs: int = 90
    batch_molecules: int = 16
    learning_rate: float = 5e-4
    weight_decay: float = 0.0
    energy_weight: float = 1.0
    force_weight: float = 1.0
    charge_weight: float = 1000.0
    lj_weight: float = 10.0
    torsion_prior_weight: float = 1e-3
    patience: int = 20
    validation_fraction: float = 0.1
    seed: int = 20261125          # validation split (and train_fraction subset)
    init_seed: int | None = None  # initial weights and batch order; None: ``seed`` (ensemble members differ here)
    train_fraction: float = 1.0   # < 1: a seeded subset of the training molecules (learning curves)
    init_from: str | None = None  # model file whose network weights start the run (fine-tuning)
    validation_from: str | None = None  # model file whose validation molecules stay in validation
    charges_follow_qm: bool = False  # energy/force losses also train the charges (not only the AM1-BCC loss)
    model: dict = field(default_factory=dict)


def _initial_weights(model_path: str, network: ForceFieldModel, weighted) -> dict:
    """Network weights of ``model_path`` to start fine-tuning from.

    Refuses a model with another network config, and one that may have trained on a molecule of
    this run's validation split: every validation molecule that comes from a file the starting
    model trained on must have been in that model's own validation split.
    """
    saved = model_file.load(model_path)
    if saved["config"] != network.config:
        raise errors.TrainingSetupError(f"{model_path}: its network config differs from this run's; give the same --model-config")
    earlier_files = {os.path.basename(path) for path in saved["training_data"].get("files", ())}
    earlier_validation = set(saved.get("validation_molecules") or ())
    leaked = sorted(record.mol_id for record in weighted
                    if os.path.basename(record.attrs.get("data_file", "")) in earlier_files
                    and record.mol_id not in earlier_validation)
    if leaked:
        raise errors.TrainingSetupError(f"{model_path} trained on {len(leaked)} molecules of this run's validation split "
                         f"(e.g. {leaked[0]}); fine-tuning from it would bias the validation figures")
    return {name: torch.from_numpy(value) for name, value in saved["state_dict"].items()}


@dataclass
class Example:
    """One molecule prepared for training: graph, conformations and targets as tensors."""

    record: QMRecord
    graph: object
    indices: dict
    positions: torch.Tensor           # (M, N, 3) nm
    energies: torch.Tensor            # (M,) kJ/mol, mean-centred
    forces: torch.Tensor | None       # (M, N, 3) kJ/mol/nm
    charges: torch.Tensor | None      # (N,) AM1-BCC
    lj_classes: torch.Tensor | None   # (N,) GAFF2 LJ class, -100 where unknown
    pairs: tuple
    weight: float = 1.0               # multiplies this molecule's energy, force, charge and LJ loss terms

    def to(self, device) -> "Example":
        """A copy whose tensors live on ``device`` (the record stays as it is)."""
        def move(tensor):
            return None if tensor is None else tensor.to(device)
        return replace(self, graph=self.graph.to(device), indices={k: v.to(device) for k, v in self.indices.items()},
                       positions=move(self.positions), energies=move(self.energies), forces=move(self.forces),
                       charges=move(self.charges), lj_classes=move(self.lj_classes),
                       pairs=tuple(tensor.to(device) for tensor in self.pairs))


def prepare(record: QMRecord, lj_table: LJTypeTable, weight: float = 1.0) -> Example:
    """Turn a :class:`QMRecord` into an :class:`Example` whose loss terms count ``weight`` times."""
    interactions = interactions_module.from_rdkit(record.molecule.rdkit_mol)
    pairs, coulomb_scale, lj_scale = nonbonded_pairs(interactions)
    lj_classes = None
    if record.gaff2_types is not None:
        lj_classes = torch.tensor([lj_table.gaff2_type_to_class.get(t, -100) for t in record.gaff2_types])
    return Example(
        record=record,
        graph=torch_graph(molecule_graph(record.molecule.rdkit_mol, interactions)),
        indices={key: torch.from_numpy(getattr(interactions, key)) for key in ("bonds", "angles", "propers", "impropers")},
        positions=torch.tensor(record.positions, dtype=torch.float32),
        energies=torch.tensor(record.energies - record.energies.mean(), dtype=torch.float32),
        forces=None if record.forces is None else torch.tensor(record.forces, dtype=torch.float32),
        charges=None if record.am1bcc_charges is None else torch.tensor(record.am1bcc_charges, dtype=torch.float32),
        lj_classes=lj_classes,
        pairs=(torch.from_numpy(pairs), torch.from_numpy(coulomb_scale).float(), torch.from_numpy(lj_scale).float()),
        weight=float(weight),
    )


def molecule_predictions(example: Example, params: dict, lj_table_tensors, create_graph: bool,
                         charges_follow_qm: bool = False):
    """MM energies (M,) and forces (M, N, 3) of one molecule: bonded with graph, nonbonded detached
    (with ``charges_follow_qm``, the Coulomb part keeps its graph to the predicted charges)."""
    lj_class = params["lj_logits"].detach().argmax(-1)
    sigma, epsilon = lj_table_tensors[0][lj_class], lj_table_tensors[1][lj_class]
    charges = params["charges"].float() if charges_follow_qm else params["charges"].detach().float()
    pairs, coulomb_scale, lj_scale = example.pairs
    e_nb, f_nb = energy_and_forces(
        example.positions, lambda x: nonbonded_energy(x, pairs, coulomb_scale, lj_scale, charges, sigma, epsilon),
        create_graph=create_graph and charges_follow_qm)
    if not charges_follow_qm:
        e_nb, f_nb = e_nb.detach(), f_nb.detach()
    bonded_params = {k: params[k].float() for k in ("bond_k", "bond_r0", "angle_k", "angle_theta0",
                                                     "proper_k", "improper_k")}
    e_b, f_b = energy_and_forces(
        example.positions, lambda x: bonded_energy(x, example.indices, bonded_params), create_graph=create_graph)
    return e_b + e_nb, f_b + f_nb


PARTS = ("energy", "force", "charge", "lj", "torsion_prior")


def term_counts(examples: list[Example]) -> dict:
    """Molecules of ``examples`` that have each loss part (the denominators of the per-molecule means)."""
    return {"energy": len(examples), "force": sum(e.forces is not None for e in examples),
            "charge": sum(e.charges is not None for e in examples),
            "lj": sum(e.lj_classes is not None for e in examples), "torsion_prior": len(examples)}


def batch_loss(network, examples: list[Example], config: TrainingConfig, lj_table_tensors, create_graph=True,
               counts: dict | None = None):
    """Loss of one batch of molecules (scalar tensor) and its parts (floats).

    Each part is a sum over ``examples`` divided by ``counts`` (default :func:`term_counts` of
    ``examples``): with the counts of a whole mini-batch, the losses of its shards add up to its loss.
    """
    counts = counts or term_counts(examples)
    batch = Batch.from_data_list([e.graph for e in examples])
    raw = network(batch)
    per_molecule = split_per_molecule(raw, [e.graph for e in examples])
    terms = {key: [] for key in PARTS}
    for example, params in zip(examples, per_molecule):
        energies, forces = molecule_predictions(example, params, lj_table_tensors, create_graph,
                                                config.charges_follow_qm)
        energies = energies - energies.mean()
        weight = example.weight
        terms["energy"].append(weight * (((energies - example.energies) * KJ_TO_KCAL) ** 2).mean())
        if example.forces is not None:
            terms["force"].append(weight * (((forces - example.forces) * KJ_PER_NM_TO_KCAL_PER_ANGSTROM) ** 2).mean())
        if example.charges is not None:
            terms["charge"].append(weight * ((params["charges"].float() - example.charges) ** 2).mean())
        if example.lj_classes is not None:
            terms["lj"].append(weight * torch.nn.functional.cross_entropy(
                params["lj_logits"].clamp_min(-1e4), example.lj_classes, ignore_index=-100))
        terms["torsion_prior"].append(
            torch.cat([params["proper_k"].flatten(), params["improper_k"].flatten()]).pow(2).mean()
            if params["proper_k"].numel() + params["improper_k"].numel() else energies.new_zeros(()))
    parts = {key: torch.stack(values).sum() / counts[key] if values else raw["charges"].new_zeros((), dtype=torch.float32)
             for key, values in terms.items()}
    total = (config.energy_weight * parts["energy"] + config.force_weight * parts["force"]
             + config.charge_weight * parts["charge"] + config.lj_weight * parts["lj"]
             + config.torsion_prior_weight * parts["torsion_prior"])
    return total, {key: float(value.detach()) for key, value in parts.items()}


def lj_tensors(lj_table: LJTypeTable, device="cpu"):
    """(σ, ε) per LJ class as float32 tensors on ``device``."""
    return (torch.tensor(lj_table.sigma, dtype=torch.float32, device=device),
            torch.tensor(lj_table.epsilon, dtype=torch.float32, device=device))


def validation_sums(network, examples: list[Example], lj_table_tensors, batch_molecules: int = 32) -> torch.Tensor:
    """Squared-error sums and counts over ``examples``: (energy sum, energy count, force sum, force count), float64."""
    network.eval()
    sums = torch.zeros(4, dtype=torch.float64)
    with torch.no_grad():
        for start in range(0, len(examples), batch_molecules):
            chunk = examples[start:start + batch_molecules]
            raw = network(Batch.from_data_list([e.graph for e in chunk]))
            for example, params in zip(chunk, split_per_molecule(raw, [e.graph for e in chunk])):
                energies, forces = molecule_predictions(example, params, lj_table_tensors, create_graph=False)
                energies = energies - energies.mean()
                sums[0] += float((((energies - example.energies) * KJ_TO_KCAL) ** 2).sum())
                sums[1] += energies.numel()
                if example.forces is not None:
                    sums[2] += float((((forces - example.forces) * KJ_PER_NM_TO_KCAL_PER_ANGSTROM) ** 2).sum())
                    sums[3] += forces.numel()
    network.train()
    return sums


def _metrics(sums: torch.Tensor) -> dict:
    """Pooled energy RMSE (mean-centred, kcal/mol) and force-component RMSE (kcal/mol/Å) from :func:`validation_sums`."""
    energy_sq, energy_n, force_sq, force_n = (float(value) for value in sums)
    return {"energy_rmse": math.sqrt(energy_sq / max(energy_n, 1)), "force_rmse": math.sqrt(force_sq / max(force_n, 1))}


def training_device(requested: str = "cpu") -> torch.device:
    """The device this process trains on: ``requested``, except that ``cuda`` under ``torchrun`` means
    the GPU of this process's LOCAL_RANK (one GPU per process)."""
    device = torch.device(requested)
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise errors.TrainingSetupError(f"device {requested!r} asked for, but torch sees no CUDA GPU")
    return device


@contextlib.contextmanager
def distributed_from_environment(device: str = "cpu"):
    """Under ``torchrun`` (WORLD_SIZE set): a process group while the block runs, NCCL when training on
    GPUs (``device`` cuda), gloo on CPU."""
    if "WORLD_SIZE" not in os.environ or torch.distributed.is_initialized():
        yield
        return
    on_gpu = torch.device(device).type == "cuda"
    if on_gpu:
        torch.cuda.set_device(training_device(device))
    torch.distributed.init_process_group("nccl" if on_gpu else "gloo")
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over the ranks (on the process group's device; returned on ``tensor``'s device)."""
    if not torch.distributed.is_initialized():
        return tensor
    on_group_device = tensor.to("cuda") if torch.distributed.get_backend() == "nccl" else tensor
    torch.distributed.all_reduce(on_group_device, op=torch.distributed.ReduceOp.SUM)
    return on_group_device.to(tensor.device)


def shard_loss(forward, chunk: list[Example], config: TrainingConfig, lj_table_tensors, rank: int = 0, world: int = 1):
    """Loss of rank ``rank``'s shard (every ``world``-th molecule) of mini-batch ``chunk``, and the loss parts of ``chunk``.

    The shard's parts are divided by the molecule counts of the whole ``chunk`` and the loss is
    multiplied by ``world``: the average of the ranks' gradients (what DistributedDataParallel
    computes) is then the gradient of ``chunk``'s loss in one process. The parts are summed over the ranks.
    """
    shard = chunk[rank::world]
    # a rank without a molecule in this batch runs one with weight 0, to join the gradient all-reduce
    loss, parts = batch_loss(forward, shard or chunk[:1], config, lj_table_tensors, counts=term_counts(chunk))
    if world == 1:
        return loss, parts
    reduced = _all_reduce_sum(torch.tensor([parts[key] if shard else 0.0 for key in PARTS], dtype=torch.float64))
    return loss * (world if shard else 0.0), dict(zip(PARTS, reduced.tolist()))


def optimizer_step(network, optimizer, loss) -> None:
    """One update: gradients of ``loss``, clipped to norm 10, then the optimizer's step."""
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(network.parameters(), 10.0)
    optimizer.step()


def train(data_paths: list, out_path: str, lj_table: LJTypeTable, config: TrainingConfig | None = None,
          checkpoint_path: str | None = None, label_preference=DEFAULT_LABEL_PREFERENCE,
          max_molecules: int | None = None, progress: bool = True, log=print, device: str = "cpu",
          resume: str | None = None, stop_after_epochs: int | None = None,
          stop_after_seconds: float | None = None) -> dict:
    """Train a model on QM files, save the best (by validation force RMSE) to ``out_path``; return its metrics.

    ``data_paths``: paths or ``FILE[:LABELS[:WEIGHT]]`` specs (:func:`grappa_like.data.parse_data_spec`);
    a file's weight multiplies its molecules' loss terms.

    Checkpoints: after every epoch the whole run state (network, optimizer, scheduler, epoch, best
    weights and epoch, history, the Python/NumPy/torch(/CUDA) random states, and what the run was
    started with) is written to ``checkpoint_path`` (default ``out_path + '.ckpt'``). The run
    continues from ``resume`` when given (a missing file is an error), else from ``checkpoint_path``
    if that file exists; a resumed run gives the same weights as one that was never stopped. A
    checkpoint of another run (other data, split, labels or hyper-parameters other than ``epochs``
    and ``patience``) is refused with :class:`~grappa_like.errors.TrainingSetupError`.
    ``stop_after_epochs`` / ``stop_after_seconds``: end this call after that many epochs / once an
    epoch ends past that wall time, leaving the checkpoint to resume from (for runs sliced into jobs).

    In an initialised ``torch.distributed`` process group of N ranks (``torchrun``, see
    :func:`distributed_from_environment`) every rank reads all data and takes every N-th molecule of
    each mini-batch; DistributedDataParallel averages the gradients, and each rank's loss is scaled
    so that the average is the gradient of the whole mini-batch's loss, as in one process. Only rank
    0 logs and writes the model and checkpoint files.

    ``device``: ``cpu`` or ``cuda`` (``cuda:N``): the network and all prepared data move there
    once; under ``torchrun``, ``cuda`` is the GPU of the process's LOCAL_RANK (NCCL). The model file
    is the same whatever the device (its tensors are saved on the CPU).
    """
    from tqdm.auto import tqdm

    config = config or TrainingConfig()
    distributed = torch.distributed.is_initialized()
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if distributed else (0, 1)
    device = training_device(device)
    if rank != 0:
        log, progress = (lambda line: None), False
    checkpoint_path = checkpoint_path or out_path + ".ckpt"
    init_seed = config.seed if config.init_seed is None else config.init_seed
    torch.manual_seed(init_seed)
    specs = [parse_data_spec(path) for path in data_paths]
    weighted = read_data(specs, label_preference)
    if max_molecules:
        weighted = sorted(weighted, key=lambda pair: pair[0].mol_id)[:max_molecules]
    ids_per_file = {}
    for record, _ in weighted:
        ids_per_file.setdefault(record.attrs.get("data_file"), []).append(record.mol_id)
    train_ids, validation_ids = split_per_file(ids_per_file.values(), config.validation_fraction, config.seed)
    forced = []
    if config.validation_from:
        forced = model_file.load(config.validation_from).get("validation_molecules") or []
    before = set(validation_ids)
    train_ids, validation_ids = keep_same_molecules_together(
        train_ids, validation_ids, {record.mol_id: record.molecule.smiles for record, _ in weighted}, forced)
    if set(validation_ids) != before:
        log(f"{len(set(validation_ids) - before)} molecules moved to validation: the same molecule as a validation "
            "molecule under another id" + (f", or in the validation split of {config.validation_from}" if forced else ""))
    validation_set = set(validation_ids)
    if config.train_fraction < 1.0:  # the validation split stays the same; only training molecules are dropped
        kept = np.random.default_rng(config.seed).permutation(len(train_ids))[:round(config.train_fraction * len(train_ids))]
        kept_ids = validation_set | {train_ids[i] for i in kept}
        weighted = [(record, weight) for record, weight in weighted if record.mol_id in kept_ids]
    examples = [prepare(r, lj_table, w).to(device) for r, w in tqdm(weighted, desc="prepare", disable=not progress)]
    train_examples = [e for e in examples if e.record.mol_id not in validation_set]
    validation_examples = [e for e in examples if e.record.mol_id in validation_set]
    log(f"{len(train_examples)} training and {len(validation_examples)} validation molecules")

    network = ForceFieldModel(config.model, lj_table.atomic_numbers)
    if config.init_from:
        network.load_state_dict(_initial_weights(
            config.init_from, network, [r for r, _ in weighted if r.mol_id in validation_set]))
    network.to(device)
    # decoupled weight decay (AdamW): an L2 term added to the gradient (Adam's weight_decay) is swamped
    # by the norm-clipped gradients early on: Adam with L2 0.02 stayed at 120 kcal/mol/Å for 7 epochs
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs,
                                                           eta_min=config.learning_rate / 50)
    state = {"epoch": 0, "best_force_rmse": float("inf"), "best_state": None, "best_epoch": -1, "history": []}
    run_identity = _run_identity(config, specs, label_preference, max_molecules, train_examples, validation_ids)
    if resume is not None and not os.path.exists(resume):
        raise errors.TrainingSetupError(f"--resume {resume}: no such checkpoint")
    resume_from = resume if resume is not None else (checkpoint_path if os.path.exists(checkpoint_path) else None)
    if resume_from is not None:
        checkpoint = torch.load(resume_from, weights_only=False, map_location=device)
        _check_same_run(resume_from, checkpoint.get("run"), run_identity)
        network.load_state_dict(checkpoint["network"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if scheduler.T_max != config.epochs:  # --epochs changed: the cosine runs over the new length from here
            scheduler.T_max = config.epochs
        state = checkpoint["state"]
        _set_random_states(checkpoint["random_states"] if "random_states" in checkpoint else
                           {"python": checkpoint["python_rng"], "torch": checkpoint["torch_rng"]})
        log(f"resumed from {resume_from} at epoch {state['epoch']}")
    else:
        random.seed(init_seed)
    tables = lj_tensors(lj_table, device)
    forward = network
    if distributed:
        forward = torch.nn.parallel.DistributedDataParallel(
            network, device_ids=[device] if device.type == "cuda" else None, find_unused_parameters=True)

    network.train()
    started, epochs_this_call = time.monotonic(), 0
    while state["epoch"] < config.epochs and state["epoch"] - state["best_epoch"] <= config.patience:
        if stop_after_epochs is not None and epochs_this_call >= stop_after_epochs:
            log(f"stopped after {epochs_this_call} epochs as asked; resume from {checkpoint_path}")
            break
        if stop_after_seconds is not None and epochs_this_call and time.monotonic() - started >= stop_after_seconds:
            log(f"stopped after {time.monotonic() - started:.0f} s ({epochs_this_call} epochs) as asked; "
                f"resume from {checkpoint_path}")
            break
        epochs_this_call += 1
        order = list(range(len(train_examples)))
        random.shuffle(order)
        sums = {}
        bar = tqdm(range(0, len(order), config.batch_molecules), desc=f"epoch {state['epoch'] + 1}",
                   disable=not progress, leave=False)
        for start in bar:
            chunk = [train_examples[i] for i in order[start:start + config.batch_molecules]]
            loss, parts = shard_loss(forward, chunk, config, tables, rank, world)
            optimizer_step(network, optimizer, loss)
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value * len(chunk)
            bar.set_postfix(force=f"{math.sqrt(parts['force']):.2f}")
        metrics = _metrics(_all_reduce_sum(validation_sums(network, validation_examples[rank::world], tables)))
        scheduler.step()
        state["epoch"] += 1
        train_parts = {key: value / len(order) for key, value in sums.items()}
        state["history"].append({"epoch": state["epoch"], "train": train_parts, "validation": metrics,
                                 "learning_rate": optimizer.param_groups[0]["lr"]})
        log(f"epoch {state['epoch']}: train force RMSE {math.sqrt(train_parts['force']):.3f}, energy RMSE "
            f"{math.sqrt(train_parts['energy']):.3f}; validation force RMSE {metrics['force_rmse']:.3f} kcal/mol/Å, "
            f"energy RMSE {metrics['energy_rmse']:.3f} kcal/mol; lr {optimizer.param_groups[0]['lr']:.2e}")
        if metrics["force_rmse"] < state["best_force_rmse"]:
            state.update(best_force_rmse=metrics["force_rmse"], best_epoch=state["epoch"],
                         best_state={k: v.detach().clone() for k, v in network.state_dict().items()})
            if rank == 0:
                _save_model(out_path, state, config, lj_table, validation_ids, specs, label_preference)
        if rank == 0:
            checkpoint = {"format": CHECKPOINT_FORMAT, "run": run_identity, "network": network.state_dict(),
                          "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "state": state,
                          "random_states": _random_states()}
            atomic_write(checkpoint_path, lambda temporary: torch.save(checkpoint, temporary))
    if distributed:
        torch.distributed.barrier()  # the other ranks return once rank 0's files are written
    return state


CHECKPOINT_FORMAT = 2  # 1: the first checkpoints (no run identity, Python + torch random states only)
# hyper-parameters that may change between a run and its resumption: they only decide when it ends
# (a changed ``epochs`` also stretches the cosine schedule from the resumed epoch on)
RESUMABLE_CHANGES = ("epochs", "patience")


def _run_identity(config, specs, label_preference, max_molecules, train_examples, validation_ids) -> dict:
    """What a checkpoint must agree on to be resumed: hyper-parameters, data files, labels, split."""
    return {
        "config": {k: v for k, v in vars(config).items() if k not in RESUMABLE_CHANGES},
        "files": [(os.path.basename(spec.path), list(spec.labels) if spec.labels else None, spec.weight)
                  for spec in specs],
        "label_preference": list(label_preference),
        "max_molecules": max_molecules,
        "training_molecules": sorted(e.record.mol_id for e in train_examples),
        "validation_molecules": sorted(validation_ids),
    }


def _check_same_run(path: str, saved: dict | None, current: dict) -> None:
    """Refuse a checkpoint of another run, naming what differs (checkpoints without an identity pass)."""
    if saved is None:
        return
    differing = sorted(key for key in current if saved.get(key) != current[key])
    if "config" in differing:
        differing.remove("config")
        differing = sorted(differing + [f"config.{key}" for key in set(saved["config"]) | set(current["config"])
                                        if saved["config"].get(key) != current["config"].get(key)])
    if differing:
        raise errors.TrainingSetupError(
            f"{path} is the checkpoint of another run: {', '.join(differing)} differ; give the same data and "
            "options as that run (only --epochs and --patience may change), or another --out")


def _random_states() -> dict:
    """The random states a training run draws from (Python's for the batch order, NumPy's, torch's, CUDA's)."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_random_states(states: dict) -> None:
    random.setstate(states["python"])
    if "numpy" in states:
        np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"].cpu())
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state.cpu() for state in states["cuda"]])


def _save_model(out_path, state, config, lj_table, validation_ids, specs, label_preference):
    network_config = dict(ForceFieldModel(config.model, lj_table.atomic_numbers).config)
    training_data = {
        "files": [os.path.basename(spec.path) for spec in specs],
        "label_preference": list(label_preference),
        "training_config": {k: v for k, v in vars(config).items() if k != "model"},
        "best_epoch": state["best_epoch"],
    }
    if any(spec.labels is not None or spec.weight != 1.0 for spec in specs):
        training_data["file_labels_and_weights"] = [
            {"file": os.path.basename(spec.path), "labels": list(spec.labels or label_preference), "weight": spec.weight}
            for spec in specs]
    model_file.save(out_path, {
        "config": network_config,
        "state_dict": state["best_state"],
        "lj_types": lj_table.to_dict(),
        "validation_molecules": list(validation_ids),
        "training_data": training_data,
        "metrics": {"validation_force_rmse_kcal_per_mol_angstrom": state["best_force_rmse"],
                    "history": state["history"]},
    })
