"""``python -m visiondl_keras diagnose CHECKPOINT_OR_RUN_DIR``: every diagnostic of a trained model.

Thin translation of the command line into :func:`visiondl_keras.evaluation.report.diagnose`; see
that module for the files it writes.
"""

from __future__ import annotations

import argparse

from visiondl_keras.cli.common import (
    batch_size_parent,
    data_parent,
    float_list,
    int_list,
    name_list,
    quiet_parent,
)
from visiondl_keras.names import CORRUPTIONS
from visiondl_keras.names import REPORT_STAGES as STAGES


def _stage_list(text: str) -> list[str]:
    """``"noise,attacks"`` -> ``["noise", "attacks"]``, each one of the optional stages."""
    names = name_list(text)
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    return names


def run(args: argparse.Namespace) -> int:
    from visiondl_keras.evaluation.report import diagnose

    """Run ``diagnose``; returns the exit status."""
    diagnose(
        args.model, args.data, out_dir=args.out, tag=args.tag, stages=[s for s in STAGES if s not in args.skip],
        limit=args.limit, noise_limit=args.noise_limit, attack_limit=args.attack_limit,
        corruption_limit=args.corruption_limit, corruptions=args.corruptions, severities=args.severities,
        epsilons=args.epsilons, sigmas=args.sigmas, pgd_steps=args.pgd_steps, gallery_size=args.gallery_size,
        review_size=args.review_size, temperature=args.temperature, batch_size=args.batch_size, seed=args.seed,
        dpi=args.dpi, progress=not args.quiet,
    )  # fmt: skip
    return 0


def register(subparsers) -> None:
    """Add the ``diagnose`` command."""
    p = subparsers.add_parser(
        "diagnose",
        parents=[data_parent(), batch_size_parent(500), quiet_parent()],
        help="confusion matrix, misclassifications, Grad-CAM, noise/FGSM/PGD, corruption benchmark",
        description="Every diagnostic of a trained model on the CIFAR-10 test split: confusion matrices, "
        "per-class report, misclassification review, Grad-CAM gallery and sanity check, Gaussian noise, "
        "FGSM/PGD attacks and a CIFAR-10-C style corruption benchmark; writes JSON and figures.",
    )
    p.add_argument("model", metavar="CHECKPOINT_OR_RUN_DIR", help="a .keras checkpoint or a run directory (its best.keras)")
    p.add_argument("--out", help="output folder (default: the run directory, or ./diagnostics/NAME)")
    p.add_argument("--tag", help="file-name prefix (default: the checkpoint's name; none for a run directory)")
    p.add_argument("--limit", type=int, help="evaluate a stratified subset of N test images")
    p.add_argument("--noise-limit", type=int, help="run the noise sweep on a stratified subset of N of them")
    p.add_argument("--attack-limit", type=int, help="run FGSM/PGD on a stratified subset of N of them")
    p.add_argument("--corruption-limit", type=int, help="run the corruption benchmark on N of them")
    p.add_argument("--corruptions", type=name_list, help=f"comma-separated subset of: {', '.join(CORRUPTIONS)}")
    p.add_argument("--severities", type=int_list, default=[1, 2, 3, 4, 5], help="comma-separated severities, 1-5 "
                   "(default 1,2,3,4,5)")
    p.add_argument("--epsilons", type=float_list, default=[0, 1, 2, 4, 8],
                   help="FGSM/PGD budgets in 0-255 pixel units, 8 = 8/255 (default 0,1,2,4,8)")
    p.add_argument("--sigmas", type=float_list, default=[0, 2, 4, 8, 16],
                   help="Gaussian noise sigmas in 0-255 pixel units (default 0,2,4,8,16)")
    p.add_argument("--pgd-steps", type=int, default=10, help="PGD steps (default 10)")
    p.add_argument("--gallery-size", type=int, default=24, help="Grad-CAM gallery examples (default 24; >= 20 "
                   "recommended)")
    p.add_argument("--review-size", type=int, default=24, help="highest-loss images in the misclassification "
                   "review (default 24)")
    p.add_argument("--temperature", type=float,
                   help="softmax temperature for probabilities (default: the checkpoint's calibration sidecar, else 1)")
    p.add_argument("--skip", type=_stage_list, default=[], help=f"comma-separated stages to skip: {', '.join(STAGES)}")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsets, noise, gallery and corruptions (default 0)")
    p.add_argument("--dpi", type=int, default=110, help="PNG resolution (default 110)")
    p.set_defaults(func=run)
