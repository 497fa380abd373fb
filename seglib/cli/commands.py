"""Command line: python -m seglib COMMAND --help documents every option."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

from seglib.config import PROFILES, profile_config
from seglib.data.io import DataError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except (DataError, FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m seglib", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_phantom, _add_train, _add_predict, _add_fuse, _add_evaluate, _add_check,
                _add_import, _add_split, _add_demo, _add_segment, _add_export, _add_baseline, _add_bench,
                _add_ablation, _add_report):
        add(commands)
    return parser


def _add_phantom(commands):
    p = commands.add_parser("phantom", help="generate synthetic AP pelvis radiographs with bone masks")
    p.add_argument("--out", required=True, type=Path, help="new dataset folder (must not exist or be empty)")
    p.add_argument("--n", type=int, default=200, help="number of images (default 200)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(handler=_phantom)


def _phantom(args):
    from seglib.data.phantom import write_phantom_dataset

    print(write_phantom_dataset(args.out, n=args.n, size=args.size, seed=args.seed))


def _add_train(commands):
    p = commands.add_parser("train", help="train a U-Net for one structure (or several) into a run directory")
    p.add_argument("--data", required=True, type=Path, help="dataset folder in the standard layout")
    p.add_argument("--structure", required=True, action="append",
                   help="structure to segment (mask folder name); repeat for a multi-output model")
    p.add_argument("--out", required=True, type=Path, help="run directory to create")
    p.add_argument("--profile", choices=PROFILES, default="demo", help="size preset (default demo)")
    p.add_argument("--image-size", type=int, help="input side in pixels")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--lr-schedule", choices=("cosine", "plateau"), help="cosine decay (default) or halve on plateau")
    p.add_argument("--architecture", choices=("unet", "resunet", "attention_unet"), help="default unet")
    p.add_argument("--depth", type=int, help="number of down-samplings")
    p.add_argument("--downsampling", choices=("maxpool", "strided"),
                   help="strided: MONAI-style stride-2 convolutions, about 3x fewer operations (see README)")
    p.add_argument("--base-filters", type=int, help="filters at the first level")
    p.add_argument("--dropout", type=float)
    p.add_argument("--loss", help="bce_dice (default), dice, focal, tversky, focal_tversky, unified_focal_sym, "
                                  "unified_focal_asym, or a weighted sum in quotes, e.g. '0.5*bce_dice+0.5*focal_tversky'")
    p.add_argument("--seed", type=int)
    p.add_argument("--split-file", help="CSV id,split (train/val/test) to use instead of a seeded split")
    p.add_argument("--val-fraction", type=float)
    p.add_argument("--test-fraction", type=float)
    p.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                   help="no geometric or intensity augmentation")
    p.add_argument("--no-mirror-flip", dest="mirror_flip", action="store_false", default=None,
                   help="no mirrored examples (needed for structures without a mirror partner)")
    p.add_argument("--side-aware", action=argparse.BooleanOptionalAction, default=None,
                   help="an input channel with the signed position relative to the estimated midline (default on)")
    p.add_argument("--consistency-weight", type=float,
                   help="mirror-consistency loss weight; needs both partners as --structure and --no-side-aware")
    p.add_argument("--strategy", choices=("auto", "mirrored", "multi_worker", "default"),
                   help="tf.distribute strategy (default auto: all GPUs mirrored); multi_worker reads TF_CONFIG")
    p.add_argument("--cpu-devices", type=int, metavar="N",
                   help="split the CPU into N logical devices (MirroredStrategy replicas without GPUs)")
    p.add_argument("--force", action="store_true", help="replace an existing run directory")
    p.add_argument("--checkpoint-seconds", type=float,
                   help="write model.keras and the resume backup at most this often (default 60; 0: every epoch)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out from its last backup (same options)")
    p.set_defaults(handler=_train)


def _train(args):
    from seglib.training.fit import train

    if args.cpu_devices:
        from seglib.training.hardware import split_cpu

        split_cpu(args.cpu_devices)  # before TensorFlow runs its first op
    names = ("image_size", "epochs", "batch_size", "learning_rate", "lr_schedule", "architecture", "depth", "downsampling",
             "base_filters", "dropout", "loss", "seed", "split_file", "val_fraction", "test_fraction", "augment",
             "mirror_flip", "side_aware", "consistency_weight", "strategy",
             "checkpoint_seconds")
    options = {name: getattr(args, name) for name in names}
    # absolute, so the run can be resumed or compared from any working directory (notebooks run in notebooks/)
    config = profile_config(args.profile, data=str(args.data.resolve()), structures=tuple(args.structure), **options)
    print(train(config, args.out, force=args.force, resume=args.resume))


def _add_predict(commands):
    p = commands.add_parser("predict", help="probability maps and masks per structure, in dataset layout")
    p.add_argument("--run", required=True, action="append", type=Path, help="run directory; repeatable")
    p.add_argument("--images", required=True, type=Path, help="folder of images")
    p.add_argument("--out", required=True, type=Path, help="output folder to create")
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation with partner swap")
    p.add_argument("--subset", choices=("train", "val", "test"), help="only the images of this split of the run")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(handler=_predict)


def _predict(args):
    from seglib.inference.predictor import predict_folder

    print(predict_folder(args.run, args.images, args.out, tta=args.tta, subset=args.subset,
                         threshold=args.threshold, force=args.force))


def _add_fuse(commands):
    p = commands.add_parser("fuse", help="predict with per-bone runs and fuse into one label map per image")
    p.add_argument("--runs", required=True, nargs="+", type=Path, help="run directories, one per structure")
    p.add_argument("--images", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation with partner swap")
    p.add_argument("--subset", choices=("train", "val", "test"), help="only the images of this split")
    p.add_argument("--strategy", default="argmax", choices=("argmax", "priority", "multilabel"))
    p.add_argument("--priority", nargs="+", help="structure order for --strategy priority")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--no-largest-component", dest="largest_component", action="store_false")
    p.add_argument("--no-fill-holes", dest="fill_holes", action="store_false")
    p.add_argument("--min-object-fraction", type=float, default=0.0,
                   help="remove components smaller than this fraction of the image's pixels "
                        "(e.g. 0.001 = 0.1 %%); 0 keeps all")
    p.add_argument("--force", action="store_true")
    p.set_defaults(handler=_fuse)


def _fuse(args):
    from seglib.inference.predictor import fuse_folder

    print(fuse_folder(args.runs, args.images, args.out, tta=args.tta, subset=args.subset, force=args.force,
                      strategy=args.strategy, priority=args.priority, threshold=args.threshold,
                      largest_component=args.largest_component, fill_holes=args.fill_holes,
                      min_object_fraction=args.min_object_fraction))


def _add_evaluate(commands):
    p = commands.add_parser("evaluate", help="metrics per (image, structure) of a prediction folder")
    p.add_argument("--pred", required=True, type=Path, help="prediction folder (masks/<structure>/<id>.png)")
    p.add_argument("--data", required=True, type=Path, help="dataset with the ground truth")
    p.add_argument("--out", required=True, type=Path, help="metrics CSV to write")
    p.add_argument("--method", default="model", help="name of the method in the table")
    p.add_argument("--uwmgi", action="store_true",
                   help="add the UW-Madison GI tract score: 0.4*Dice + 0.6*(1 - Hausdorff / image diagonal)")
    p.add_argument("--force", action="store_true", help="replace an existing metrics CSV")
    p.set_defaults(handler=_evaluate)


def _evaluate(args):
    from seglib.data.io import write_text
    from seglib.evaluation.folder import evaluate_folder
    from seglib.evaluation.statistics import summarise

    table = evaluate_folder(args.pred, args.data, method=args.method, uwmgi=args.uwmgi)
    write_text(args.out, table.to_csv(index=False), overwrite=args.force)
    columns = ["method", "structure", "n_images", "dice_mean", "dice_std", "hd95_mean", "hd95_std"]
    print(summarise(table)[columns].to_string(index=False, float_format="%.3f"))


def _add_check(commands):
    p = commands.add_parser("check", help="validate a dataset; non-zero exit when it has problems")
    p.add_argument("dataset", type=Path)
    p.add_argument("--structure", action="append", help="structures to check (default: all)")
    p.set_defaults(handler=_check)


def _check(args):
    from seglib.data.validation import check_dataset, has_errors

    problems = check_dataset(args.dataset, args.structure)
    for problem in problems:
        print(problem)
    errors = sum(p.level == "error" for p in problems)
    print(f"{args.dataset}: {errors} error(s), {len(problems) - errors} warning(s)")
    return 1 if has_errors(problems) else 0


def _add_import(commands):
    from seglib.data.adapters import FORMATS, SIDE_CONVENTIONS

    p = commands.add_parser("import", help="convert a dataset of another format into the standard layout")
    p.add_argument("--format", required=True, choices=sorted(FORMATS),
                   help="labels: label-value masks + labels.json; uwmgi: Kaggle UW-Madison GI tract "
                        "(train.csv RLE + 16-bit slices); sides: leftMask/ rightMask/ folders; dicom: .dcm images")
    p.add_argument("source", type=Path)
    p.add_argument("--out", required=True, type=Path, help="new dataset folder")
    p.add_argument("--structure", default="lung", help="sides: masks become left_<structure>, right_<structure>")
    p.add_argument("--side-convention", choices=SIDE_CONVENTIONS, default="patient",
                   help="sides: whether leftMask means the patient's left (default) or the image's left")
    p.set_defaults(handler=_import)


def _import(args):
    from seglib.data.adapters import import_dataset

    options = {"structure": args.structure, "side_convention": args.side_convention} if args.format == "sides" else {}
    print(import_dataset(args.format, args.source, args.out, **options))


def _add_demo(commands):
    p = commands.add_parser("demo", help="run the notebooks 01-03 in sequence (the main job)")
    p.add_argument("--profile", choices=PROFILES, default="demo")
    p.add_argument("--data", help="dataset folder (default: generated pelvis phantoms)")
    p.add_argument("--notebooks", nargs="+", choices=("01", "02", "03"), default=["01", "02", "03"],
                   help="run only these (e.g. 03 to rebuild the report from existing runs)")
    p.add_argument("--train-contemporary", action="store_true",
                   help="notebook 03 trains the residual and attention U-Nets it lacks (~25 min at demo on 2 CPU cores)")
    p.set_defaults(handler=_demo)


def _demo(args):
    from seglib.workflow.notebooks import run_notebooks

    if args.train_contemporary:
        os.environ["SEGLIB_TRAIN_CONTEMPORARY"] = "yes"  # the notebook kernels inherit the environment
    run_notebooks(args.profile, data=args.data, only=args.notebooks)


def _add_segment(commands):
    p = commands.add_parser("segment", help="batch inference: label maps at original size, overlays, areas.csv")
    p.add_argument("--runs", required=True, nargs="+", type=Path, help="run directories, one per structure")
    p.add_argument("--images", required=True, type=Path, help="folder of images of any sizes")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation with partner swap")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--force", action="store_true")
    p.set_defaults(handler=_segment)


def _segment(args):
    from seglib.inference.segment import segment_folder

    print(segment_folder(args.runs, args.images, args.out, tta=args.tta, threshold=args.threshold, force=args.force))


def _add_export(commands):
    p = commands.add_parser("export", help="export a run's model as a TensorFlow SavedModel for serving")
    p.add_argument("--run", required=True, type=Path)
    p.add_argument("--out", type=Path, help="default RUN/saved_model")
    p.set_defaults(handler=_export)


def _export(args):
    from seglib.inference.export import export_run

    print(export_run(args.run, args.out))


def _add_baseline(commands):
    from seglib.inference.baselines import BASELINES

    p = commands.add_parser("baseline", help="classical segmentation baseline into a prediction folder")
    p.add_argument("--method", required=True, choices=sorted(BASELINES))
    p.add_argument("--images", required=True, type=Path)
    p.add_argument("--structure", required=True, action="append", help="e.g. left_hip and right_hip")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--subset-of", type=Path, metavar="RUN_DIR", help="with --subset: the run whose split.csv to use")
    p.add_argument("--subset", choices=("train", "val", "test"))
    p.set_defaults(handler=_baseline)


def _baseline(args):
    from seglib.data.layout import list_images
    from seglib.inference.baselines import predict_baseline_folder
    from seglib.inference.predictor import select_ids

    ids = list(select_ids(list_images(args.images), args.subset_of, args.subset)) if args.subset else None
    print(predict_baseline_folder(args.method, args.images, args.out, args.structure, ids=ids))


def _add_bench(commands):
    p = commands.add_parser("bench", help="input pipeline, training and inference speed; writes reports/benchmarks.md")
    p.add_argument("--profile", choices=PROFILES, default="smoke")
    p.add_argument("--out", type=Path, default=Path("reports/benchmarks.md"))
    p.add_argument("--compare", action="store_true",
                   help="train seglib's default and the bare Keras network of the same architecture one after the "
                        "other; print test Dice, seconds and the ratio (writes no report)")
    p.add_argument("--data", type=Path, help="with --compare: dataset (default: the profile's phantoms)")
    p.add_argument("--structure", default="left_hip", help="with --compare: the structure (default left_hip)")
    p.set_defaults(handler=_bench)


def _bench(args):
    from seglib.experiments.bench import run_benchmark, run_comparison

    if args.compare:
        print(run_comparison(args.profile, data=args.data, structure=args.structure))
        return
    run_benchmark(args.profile, out=args.out)
    print(args.out)


def _add_split(commands):
    p = commands.add_parser("split", help="write a fixed-count split file (the benchmark protocol) for --split-file")
    p.add_argument("dataset", type=Path)
    p.add_argument("--out", required=True, type=Path, help="CSV id,split to write")
    p.add_argument("--test", type=int, required=True, help="number of test images (the first after shuffling)")
    p.add_argument("--val", type=int, required=True, help="number of validation images (the last)")
    p.add_argument("--seed", type=int, default=0, help="random.Random(seed) shuffles the sorted ids")
    p.set_defaults(handler=_split)


def _split(args):
    from seglib.data.layout import list_images
    from seglib.data.splits import fixed_count_split, write_split

    if args.out.exists():
        raise FileExistsError(f"{args.out}: already exists; refusing to overwrite")
    split = fixed_count_split(list_images(args.dataset / "images"), args.test, args.val, args.seed)
    write_split(split, args.out)
    counts = Counter(split.values())
    print(f"{args.out}: " + ", ".join(f"{counts[name]} {name}" for name in sorted(counts)))


def _add_ablation(commands):
    from seglib.experiments.ablation import CONFIGURATIONS

    p = commands.add_parser("ablation", help="train with and without each symmetry component; table and chart")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--structures", required=True, nargs=2, metavar=("LEFT", "RIGHT"), help="a mirror pair")
    p.add_argument("--out", type=Path, default=Path("reports/ablation"), help="where the table and chart go")
    p.add_argument("--work", type=Path, default=Path("runs/ablation"), help="where the runs go (reused if complete)")
    p.add_argument("--profile", choices=PROFILES, default="demo")
    p.add_argument("--epochs", type=int, help="the fixed budget (default: the profile's)")
    p.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.25])
    p.add_argument("--split-file", help="fixed split (id,split); default: the seeded split")
    p.add_argument("--configurations", nargs="+", choices=list(CONFIGURATIONS))
    p.set_defaults(handler=_ablation)


def _ablation(args):
    from seglib.experiments.ablation import run_ablation

    table = run_ablation(args.data, args.structures, args.out, args.work / args.data.name, profile=args.profile,
                         fractions=args.fractions, epochs=args.epochs, split_file=args.split_file,
                         configurations=args.configurations)
    print(table.round(3).to_string(index=False))


def _add_report(commands):
    p = commands.add_parser("report", help="report.md + report.html: metric tables, paired margins, box plots, "
                                           "overlays of every method, fused label maps, left/right confusion")
    p.add_argument("--pred", nargs="+", default=[], type=_named_path, metavar="NAME=DIR",
                   help="prediction folders (masks/<structure>/<id>.png), each with its method name; needs --data")
    p.add_argument("--data", type=Path, help="dataset with the ground truth")
    p.add_argument("--eval", nargs="+", default=[], type=Path, help="metrics CSVs written by evaluate (more methods)")
    p.add_argument("--runs", nargs="+", default=[], type=_named_runs, metavar="NAME=RUN[,RUN...]",
                   help="training run dirs of a method, for the training section")
    p.add_argument("--reference", help="the method the others are measured against (default: the first)")
    p.add_argument("--no-images", dest="show_images", action="store_false",
                   help="leave out the figures that show the images (when their licence forbids sharing them)")
    p.add_argument("--out", required=True, type=Path, help="folder for report.md, report.html, tables and figures")
    p.set_defaults(handler=_report)


def _named_path(text: str) -> tuple[str, Path]:
    name, separator, path = text.partition("=")
    if not separator or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=DIR")
    return name, Path(path)


def _named_runs(text: str) -> tuple[str, list[Path]]:
    name, path = _named_path(text)
    return name, [Path(p) for p in str(path).split(",")]


def _report(args):
    import pandas as pd

    from seglib.reporting.document import build_report

    if not args.pred and not args.eval:
        raise ValueError("report: give prediction folders (--pred NAME=DIR --data DATASET) or metrics CSVs (--eval)")
    if args.pred and args.data is None:
        raise ValueError("report: --pred needs --data, the dataset with the ground truth")
    for option, pairs in (("--pred", args.pred), ("--runs", args.runs)):
        names = [name for name, _ in pairs]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:  # a dict would silently keep only the last one
            raise ValueError(f"report: {option} names method {repeated[0]!r} twice")
    extra = pd.concat([pd.read_csv(path) for path in args.eval], ignore_index=True) if args.eval else None
    print(build_report(args.out, dict(args.pred), args.data, reference=args.reference, runs=dict(args.runs),
                       extra_metrics=extra, show_images=args.show_images))
