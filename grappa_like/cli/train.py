"""``grappa-like train``: train a model on QM data files and save it as a model file."""

from __future__ import annotations

import json
import logging
import os

# grappa_like.data.DEFAULT_LABEL_PREFERENCE, as text (importing grappa_like.data here would slow every command)
DEFAULT_LABELS = "capped_residue=gfn2/ani2x,*peptide*=gfn2/ani2x,ani2x,gfn2"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model on QM HDF5 files",
        description="Train a grappa_like model on QM data (grappa_like-qm-v1 HDF5, SPICE HDF5 or Grappa npz). "
                    "The best model (lowest validation force RMSE) is written to --out whenever it improves; a "
                    "checkpoint <out>.ckpt (network, optimizer, schedule, random states, best weights, history) is "
                    "written every epoch: after a stop, run the same command again (or add --resume CHECKPOINT) and "
                    "the run continues to the same weights it would have reached without the stop. "
                    "Under torchrun --nproc_per_node=N the N processes share each mini-batch (DistributedDataParallel, "
                    "gloo on CPU, NCCL with --device cuda: one GPU per process) and give the loss curve of one process; only "
                    "rank 0 writes files and logs.")
    parser.add_argument("--data", nargs="+", required=True, metavar="FILE[:LABELS[:WEIGHT]]",
                        help="QM data files, each optionally with its own label preference (comma-separated, "
                             "first present wins; default --labels) and a loss weight (default 1), e.g. "
                             "../shared/data/train-v0.h5 spice.h5:dft:2.0 grappa_npz_folder:qm. SPICE files carry "
                             "the label dft, Grappa npz files the label qm")
    parser.add_argument("--out", required=True, help="model file to write, e.g. models/my-model.npz")
    parser.add_argument("--epochs", type=int, default=90, help="epochs; the learning rate follows a cosine schedule over them (default 90)")
    parser.add_argument("--patience", type=int, default=20, help="early stopping: epochs without improvement (20)")
    parser.add_argument("--train-fraction", type=float, default=1.0,
                        help="train on a seeded fraction of the training molecules; the validation split is "
                             "unchanged (for learning curves; default 1.0)")
    parser.add_argument("--init-from", default=None, metavar="MODEL",
                        help="start from this model's network weights (fine-tuning); refused if it trained on a "
                             "molecule of this run's validation split")
    parser.add_argument("--validation-from", default=None, metavar="MODEL",
                        help="keep this model's validation molecules in the validation split (e.g. the shipped "
                             "model's, so that the new model is compared on the same molecules); the other "
                             "molecules are split as usual")
    parser.add_argument("--init-seed", type=int, default=None,
                        help="seed of the initial weights and batch order (default: the split seed); the "
                             "validation split stays the same, so models of several init seeds form an ensemble")
    parser.add_argument("--weight-decay", type=float, default=0.0,
                        help="decoupled weight decay (AdamW): each step shrinks the weights by learning rate "
                             "× this (default 0)")
    parser.add_argument("--energy-weight", type=float, default=1.0,
                        help="weight of the energy loss (mean-centred, kcal²/mol² per conformation; default 1)")
    parser.add_argument("--force-weight", type=float, default=1.0,
                        help="weight of the force loss (kcal²/mol²/Å² per component; default 1)")
    parser.add_argument("--charges-follow-qm", action="store_true",
                        help="let the energy and force losses train the charges too (default: charges learn "
                             "only from AM1-BCC, for compatibility with TIP3P / ff14SB)")
    parser.add_argument("--batch-molecules", type=int, default=16, help="molecules per optimizer step (16)")
    parser.add_argument("--learning-rate", type=float, default=5e-4, help="peak learning rate (5e-4)")
    parser.add_argument("--labels", default=DEFAULT_LABELS,
                        help="label preference for files given without their own, first present wins; an entry "
                             "SUBSETS=LABEL/LABEL gives the molecules whose subset matches the pattern their own "
                             f"order (default: {DEFAULT_LABELS}, i.e. GFN2-xTB for peptides, ANI-2x elsewhere where "
                             "it applies; v2 used ani2x,gfn2)")
    parser.add_argument("--max-molecules", type=int, default=None, help="use only the first N molecules (tests)")
    parser.add_argument("--model-config", default="{}", help='JSON overrides of the network config, e.g. \'{"width": 64}\'')
    parser.add_argument("--gaff2-dat", default=None, help="path of AmberTools' gaff2.dat (default: found automatically)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu",
                        help="cpu (default) or cuda / cuda:N; under torchrun, cuda is the GPU of each process's "
                             "LOCAL_RANK")
    parser.add_argument("--resume", default=None, metavar="CHECKPOINT",
                        help="continue the run saved in CHECKPOINT (a <out>.ckpt file; default: <out>.ckpt when it "
                             "exists). Give the same data and options as the run that wrote it; only --epochs and "
                             "--patience may change (a changed --epochs re-times the cosine schedule from there on)")
    parser.add_argument("--stop-after-epochs", type=int, default=None, metavar="N",
                        help="end this call after N epochs, leaving the checkpoint to resume from (default: run to "
                             "the end)")
    parser.add_argument("--stop-after-minutes", type=float, default=None, metavar="MIN",
                        help="end this call after the first epoch that finishes past MIN minutes of wall time, "
                             "leaving the checkpoint (for runs sliced into time-limited jobs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args) -> int:
    from grappa_like import errors
    from grappa_like.data import check_label_preference, parse_data_spec
    from grappa_like.lj_types import read_gaff2_lj_table
    from grappa_like.training import TrainingConfig, distributed_from_environment, train

    log = logging.getLogger("grappa_like.train").info
    try:
        specs = [parse_data_spec(text) for text in args.data]
        label_preference = check_label_preference(args.labels.split(","))
    except ValueError as error:
        logging.getLogger("grappa_like.train").error(f"error: {error}")
        return 2
    if args.resume is not None and not os.path.exists(args.resume):
        logging.getLogger("grappa_like.train").error(f"error: --resume {args.resume}: no such checkpoint")
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config = TrainingConfig(epochs=args.epochs, patience=args.patience, batch_molecules=args.batch_molecules,
                            learning_rate=args.learning_rate, train_fraction=args.train_fraction,
                            init_from=args.init_from, validation_from=args.validation_from,
                            init_seed=args.init_seed, weight_decay=args.weight_decay,
                            energy_weight=args.energy_weight, force_weight=args.force_weight,
                            charges_follow_qm=args.charges_follow_qm,
                            model=json.loads(args.model_config))
    try:
        with distributed_from_environment(args.device):
            state = train(specs, args.out, read_gaff2_lj_table(args.gaff2_dat), config,
                          label_preference=label_preference, max_molecules=args.max_molecules,
                          progress=not args.no_progress, log=log, device=args.device, resume=args.resume,
                          stop_after_epochs=args.stop_after_epochs,
                          stop_after_seconds=None if args.stop_after_minutes is None else 60 * args.stop_after_minutes)
    except (errors.DataFileError, errors.TrainingSetupError) as error:
        logging.getLogger("grappa_like.train").error(f"error: {error}")
        return 2
    if os.environ.get("RANK", "0") != "0":
        return 0
    if state["best_state"] is None:
        log(f"stopped before the first epoch ended; nothing written to {os.path.abspath(args.out)}")
        return 0
    log(f"best validation force RMSE {state['best_force_rmse']:.3f} kcal/mol/Å at epoch {state['best_epoch']}; "
        f"model written to {os.path.abspath(args.out)}")
    return 0
