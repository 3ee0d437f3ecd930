"""``grappa-like build-dataset``: conformations + QM labels for the molecules of a SMILES file."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from grappa_like.cli.common import whole_number_at_least

log = logging.getLogger("grappa_like.build_dataset")
COUNT = whole_number_at_least(0)
STOPPED_EXIT_CODE = 3  # --stop-after-minutes ended the run before every molecule was built


def add_parser(subparsers) -> None:
    from grappa_like.dataset import DEFAULT_SEED, ConformerRecipe
    from grappa_like.labelers import DEFAULT_PYSCF_METHOD, LABELER_NAMES

    defaults = ConformerRecipe()
    parser = subparsers.add_parser(
        "build-dataset", help="make a QM training file (conformations + energies/forces) from a SMILES file",
        description="Make a QM data file in the grappa_like-qm-v1 HDF5 layout from a SMILES file "
                    "('SMILES [name]' per line). Per molecule: RDKit ETKDGv3 conformers, MMFF94 minima, "
                    "Langevin MD snapshots on the MMFF94 surface at several temperatures, torsion drives of "
                    "rotatable bonds (relaxed with MMFF94), energies and forces from the chosen labeler, and "
                    "AM1-BCC charges + GAFF2 types from AmberTools when installed. Each finished molecule is "
                    "kept in OUT.parts/; an interrupted run started again with the same arguments continues "
                    "where it stopped. Failed molecules are listed in OUT.failures.tsv. "
                    "Exit code 0: all built; 1: some failed (the rest are in OUT); 2: nothing built or a usage "
                    "error; 3: stopped by --stop-after-minutes (the finished molecules are in OUT). See docs/dataset.md.")
    parser.add_argument("smiles_file", metavar="SMILES_FILE",
                        help="molecules, one 'SMILES [name]' per line (.smi/.txt; an SDF/MOL2 is read too, its "
                             "coordinates are not used)")
    parser.add_argument("-o", "--output", required=True, help="HDF5 file to write, e.g. data/my-set.h5")
    parser.add_argument("--labeler", required=True, metavar="{" + ",".join(LABELER_NAMES) + "}[,...]",
                        help="gfn2: GFN2-xTB (tblite); ani2x: ANI-2x (torchani, needs --ani-dir; neutral H C N O F "
                             "S Cl molecules only); pyscf: DFT with density fitting (see --pyscf-method). Several, "
                             "comma-separated (e.g. gfn2,ani2x as in train-v0): the first labels every molecule, "
                             "the others where they can (else the molecule gets the attr <label>_omitted)")
    parser.add_argument("--label", default=None,
                        help="label name of the first labeler in the file (default: gfn2, ani2x, or dft for pyscf)")
    parser.add_argument("--ani-dir", default=None,
                        help="folder with the NeuroChem ANI-2x files, e.g. ../shared/teachers/ani-2x")
    parser.add_argument("--pyscf-method", default=DEFAULT_PYSCF_METHOD,
                        help=f"<functional>[-d3bj|-d3|-d4]/<basis> for --labeler pyscf (default {DEFAULT_PYSCF_METHOD}; "
                             "'hf/<basis>' for Hartree-Fock)")
    parser.add_argument("--confs", type=int, default=defaults.conformations,
                        help=f"MMFF minima + MD snapshots per molecule (default {defaults.conformations}); "
                             "torsion drives come on top")
    parser.add_argument("--max-minima", type=int, default=defaults.max_minima,
                        help=f"distinct MMFF94 minima kept per molecule (default {defaults.max_minima}; "
                             f"{defaults.max_minima_rigid} for molecules with at most one rotatable bond)")
    parser.add_argument("--torsion-points", type=int, default=defaults.torsion_points,
                        help=f"grid points per driven torsion (default {defaults.torsion_points}, i.e. 30 deg apart; "
                             "0: no torsion drives)")
    parser.add_argument("--max-torsions", type=int, default=defaults.max_torsions,
                        help=f"rotatable bonds driven per molecule at most (default {defaults.max_torsions})")
    parser.add_argument("--md-surface", choices=("mmff", "labeler"), default="mmff",
                        help="surface of the Langevin MD: mmff (default, as train-v0) or labeler (MD on the "
                             "labeler's own energy; one labeler call per 0.5 fs step, so costly)")
    parser.add_argument("--md-temperatures", type=_temperatures, default=(), metavar="T[,T...]",
                        help="MD temperatures in K, e.g. 300,500,800: one trajectory per temperature, started from "
                             "the minima in turn (default: the train-v0 scheme, 300,150,400,225,350,100 K for minima "
                             "1-6, or 150 and 350 K from a single minimum)")
    parser.add_argument("--etkdg-confs", type=COUNT, default=defaults.etkdg_conformations,
                        help="unminimised ETKDGv3 conformers added per molecule (default "
                             f"{defaults.etkdg_conformations}): raw distance-geometry structures, more distorted than "
                             "MD snapshots")
    parser.add_argument("--conjugated-torsions", type=COUNT, default=defaults.conjugated_torsions,
                        help="extra torsion drives per molecule across amide, thioamide, ester, aryl-aryl and other "
                             "conjugated single bonds not driven already (SMARTS in docs/dataset.md; default "
                             f"{defaults.conjugated_torsions}), so that their barriers are in the data")
    parser.add_argument("--normal-mode-confs", type=COUNT, default=defaults.normal_mode_conformations,
                        help="neutral molecules: relax row 0 on the (first) labeler's surface, then add its minimum "
                             "and this many harmonic samples from a finite-difference Hessian of the labeler "
                             f"(default {defaults.normal_mode_conformations}; 6N labeler calls per molecule)")
    parser.add_argument("--normal-mode-temperatures", type=_temperatures,
                        default=defaults.normal_mode_temperatures, metavar="T[,T...]",
                        help="temperatures (K) of the normal-mode samples, used in turn (default "
                             f"{','.join(f'{t:g}' for t in defaults.normal_mode_temperatures)})")
    parser.add_argument("--max-energy-above-lowest", type=float, default=defaults.max_energy_above_lowest,
                        metavar="KCAL_PER_MOL",
                        help="drop labelled rows more than this above the molecule's lowest (first label; default "
                             f"{defaults.max_energy_above_lowest:g} kcal/mol). The thermal energy grows with size "
                             "and temperature (about 2.4 kcal/mol per atom at 800 K): raise it with hot MD on large "
                             "molecules")
    parser.add_argument("--subset", default=None, help="subset attribute of the molecules (default: the file's stem)")
    parser.add_argument("--source", default=None, help="root 'source' attribute: where the molecules came from")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed of the run (default {DEFAULT_SEED})")
    parser.add_argument("--no-am1bcc", action="store_true", help="skip AM1-BCC charges and GAFF2 types")
    parser.add_argument("--am1bcc-timeout", type=float, default=600.0,
                        help="seconds allowed per antechamber run (default 600)")
    parser.add_argument("--molecule-timeout", type=float, default=1800.0,
                        help="seconds of wall time allowed per molecule; a molecule over it fails with "
                             "MoleculeTimeoutError and the build goes on (default 1800; 0: no limit)")
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=int, default=1,
                         help="worker processes, one thread each (default 1: everything in this process, with "
                              "OMP_NUM_THREADS threads, 1 unless set)")
    cluster.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                         help="build on an existing Dask cluster (dask scheduler / dask worker, or dask-jobqueue); "
                              "the workers need grappa_like and the labeler installed, not this disk: molecules come "
                              "back to this process, which writes the parts, so a rerun resumes as usual")
    parser.add_argument("--retry-failed", action="store_true",
                        help="build again the molecules that failed in an earlier run (default: keep their failure)")
    parser.add_argument("--seed-from", action="append", default=[], metavar="FILE",
                        help="an earlier output of this build (same settings and labelers; may hold only part of "
                             "the list, e.g. one made on another machine): its molecules are taken, not "
                             "built again (repeatable)")
    parser.add_argument("--stop-after-minutes", type=float, default=None, metavar="M",
                        help="start no molecule after M minutes of wall time (started ones finish), write the "
                             "output from the finished molecules and exit with code 3; the same command goes on")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _temperatures(text: str) -> tuple[float, ...]:
    """``"300,500,800"`` -> (300.0, 500.0, 800.0); argparse turns the ValueError into a usage error."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected temperatures in K like 300,500,800, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one temperature in K")
    return values


def run(args) -> int:
    from grappa_like import errors
    from grappa_like.dataset import BuildSettings, ConformerRecipe, DatasetBuildError, build_dataset, limit_threads
    from grappa_like.labelers import LABELER_NAMES, LabelerSpec

    try:
        limit_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    except ValueError:
        limit_threads(1)
    if not os.path.isfile(args.smiles_file):
        log.error(f"error: {args.smiles_file}: no such file")
        return 2
    try:
        recipe = ConformerRecipe(conformations=args.confs, max_minima=args.max_minima,
                                 torsion_points=args.torsion_points, max_torsions=args.max_torsions,
                                 md_surface=args.md_surface, md_temperatures=args.md_temperatures,
                                 etkdg_conformations=args.etkdg_confs, conjugated_torsions=args.conjugated_torsions,
                                 normal_mode_conformations=args.normal_mode_confs,
                                 normal_mode_temperatures=args.normal_mode_temperatures,
                                 max_energy_above_lowest=args.max_energy_above_lowest)
        names = [name.strip() for name in args.labeler.split(",") if name.strip()]
        unknown = [name for name in names if name not in LABELER_NAMES]
        if not names or unknown:
            raise ValueError(f"--labeler: unknown labeler {', '.join(unknown) or repr(args.labeler)}; choose from "
                             f"{', '.join(LABELER_NAMES)}")
        specs = [LabelerSpec(name, ani_dir=args.ani_dir, pyscf_method=args.pyscf_method) for name in names]
    except ValueError as error:
        log.error(f"error: {error}")
        return 2
    subset = args.subset if args.subset is not None else os.path.splitext(os.path.basename(args.smiles_file))[0]
    settings = BuildSettings(labeler=specs[0], extra_labelers=tuple(specs[1:]), recipe=recipe, label=args.label, seed=args.seed, subset=subset,
                             am1bcc=not args.no_am1bcc, am1bcc_timeout_s=args.am1bcc_timeout,
                             molecule_timeout_s=args.molecule_timeout)
    output_folder = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(output_folder, exist_ok=True)
    options = dict(source=args.source, retry_failed=args.retry_failed,
                   progress=not args.no_progress and sys.stderr.isatty(), seed_from=tuple(args.seed_from),
                   stop_after_minutes=args.stop_after_minutes)
    try:
        if args.scheduler:
            from grappa_like.cluster import connect

            with connect(scheduler=args.scheduler) as client:
                report = build_dataset(args.smiles_file, args.output, settings, client=client, **options)
        else:
            report = build_dataset(args.smiles_file, args.output, settings, workers=args.workers, **options)
    except (DatasetBuildError, errors.MissingDependencyError, ValueError, OSError) as error:
        log.error(f"error: {error}")
        return 2
    log.info(f"{len(report.written)} molecules in {report.out_path} ({len(report.computed)} built in this run), "
             f"{len(report.failures)} failed" + (f" (listed in {report.failures_path})" if report.failures else ""))
    if report.not_started:
        log.info(f"stopped after {args.stop_after_minutes:g} minutes: {len(report.not_started)} molecules not built "
                 f"yet; the same command goes on")
        return STOPPED_EXIT_CODE
    return 1 if report.failures else 0
