"""Command line: python -m seglib COMMAND --help documents every option."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import textwrap
from collections import Counter
from pathlib import Path

from seglib import __version__
from seglib.config import (
    ABLATION_CONFIGURATIONS,
    APPEARANCE_NAMES,
    BASELINE_METHODS,
    FUSION_STRATEGIES,
    IMPORT_FORMATS,
    OVERLAY_CHOICES,
    PRETRAINED_MODELS,
    PROFILES,
    SEGMENT_FORMATS,
    SIDE_CONVENTIONS,
    VALUE_RULES,
    RunConfig,
    profile_config,
)
from seglib.data.io import DataError, resolved
from seglib.data.names import UnsafeName, checked_name
from seglib.progress import shown_progress

NOTHING_WRITTEN = "nothing was written"  # commands whose outputs appear only when complete
# commands that draw a progress bar (seglib.progress) and so take --quiet
PROGRESS_COMMANDS = ("phantom", "predict", "fuse", "segment", "import", "evaluate", "bench", "ablation")
# what a maintainer runs, not a user: `python -m seglib --help` lists them apart
MAINTAINER_COMMANDS = ("pretrain", "atlas", "render-atlas", "bench", "ablation")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        with shown_progress(not getattr(args, "quiet", False)):
            return args.handler(args) or 0
    except (DataError, FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # an unwritable output folder, a full disk: one line naming the file
        print(f"error: {_os_error_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: say what state the outputs are in, not a traceback
        print(f"interrupted; {getattr(args, 'interrupted', 'stopped')}", file=sys.stderr)
        return 130


def _os_error_line(error: OSError) -> str:
    """'FILE: what went wrong' for an error of the operating system (its own text has no file or a quoted one)."""
    what = error.strerror or str(error)
    if isinstance(error, PermissionError):
        what += " (no permission to write there: choose another output or change its permissions)"
    return f"{error.filename}: {what}" if error.filename else what


def _structure(text: str) -> str:
    """argparse type of a structure name: the one naming rule (seglib.data.names)."""
    try:
        return checked_name(text, "--structure")
    except UnsafeName as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m seglib", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser,
                                     help="one of the commands below")
    for add in (_add_phantom, _add_check, _add_import, _add_split, _add_train, _add_predict, _add_fuse, _add_evaluate,
                _add_report, _add_segment, _add_merge, _add_export, _add_baseline, _add_demo,
                _add_pretrain, _add_atlas, _add_render_atlas, _add_bench, _add_ablation):
        add(commands)
    for name in PROGRESS_COMMANDS:
        commands.choices[name].add_argument("--quiet", action="store_true",
                                            help="no progress bar (none is drawn when stderr is not a terminal either)")
    users = [name for name in commands.choices if name not in MAINTAINER_COMMANDS]
    parser.epilog = (f"commands:\n{_command_list(commands, users)}\n\n"
                     f"maintainer commands (the shipped model, the shape model, studies):\n"
                     f"{_command_list(commands, MAINTAINER_COMMANDS)}")
    return parser


def _command_list(commands, names) -> str:
    """`  name  what it does` lines, the description wrapped under itself."""
    width = max(map(len, commands.choices))
    return "\n".join(textwrap.fill(commands.choices[name].description, 100, initial_indent=f"  {name:<{width}}  ",
                                    subsequent_indent=" " * (width + 4)) for name in names)


def _next_minor(version: str) -> str:
    major, minor, *_ = version.split(".")
    return f"{major}.{int(minor) + 1}"


# The spellings replaced when each concept got one flag (issue #30) keep working until the next minor version.
REMOVED_IN = _next_minor(__version__)


class _CommandParser(argparse.ArgumentParser):
    """One command's parser, which can keep an option's earlier spelling working (`renamed`)."""

    def renamed(self, new: str, old: str, **how) -> None:
        """Let `old` (an option, or the name of a former positional argument) fill the value of option `new`, with
        a warning; `how`: argparse options where the old spelling took its values otherwise (nargs)."""
        target = self._option_string_actions[new]
        how = {"nargs": target.nargs if old.startswith("-") else "?", **how}
        self.add_argument(old, action=_OldSpelling, target=target, help=argparse.SUPPRESS, default=argparse.SUPPRESS,
                          **how)

    def parse_known_args(self, args=None, namespace=None):
        required = [action for action in self._actions if action.required]
        try:
            return super().parse_known_args(args, namespace)
        finally:  # an old spelling that was given lifted its option's `required` (_OldSpelling): for that parse only
            for action in required:
                action.required = True


class _OldSpelling(argparse.Action):
    """An earlier spelling of the option `target`: it fills the same value, after one line on stderr."""

    def __init__(self, option_strings, dest, target: argparse.Action, **options):
        super().__init__(option_strings, dest, **options)
        self.target, self.warned = target, False

    def __call__(self, parser, namespace, values, option_string=None):
        new = self.target.option_strings[0]
        if not self.warned:  # one line, however often it is given
            old = option_string or f"{self.dest.upper()} as a positional argument"
            print(f"warning: {old} is deprecated; use {new} (accepted until seglib {REMOVED_IN})", file=sys.stderr)
            self.warned = True
        # the new option's type and choices, with its messages (argparse would convert a missing positional's default)
        given = [parser._get_value(self.target, value) for value in (values if isinstance(values, list) else [values])]
        for value in given:
            parser._check_value(self.target, value)
        self.target.required = False  # given: argparse counts only the option's own spelling
        if self.target.nargs in (None, "?"):  # one value a time (store, append): e.g. --structures L R
            for value in given:
                self.target(parser, namespace, value, new)
        else:  # a list (extend, nargs=1): e.g. --run R
            self.target(parser, namespace, given, new)


def _add_phantom(commands):
    p = commands.add_parser("phantom", description="generate synthetic AP pelvis radiographs with bone masks")
    p.add_argument("--out", required=True, type=Path, help="new dataset folder (must not exist or be empty)")
    p.add_argument("--n", type=_checked(int, "n"), default=200, help="number of images (default 200)")
    p.add_argument("--film-size", type=_checked(int, "film_size"), default=256, metavar="PX",
                   help="side of the rendered films in pixels (default 256)")
    p.renamed("--film-size", "--size")
    p.add_argument("--seed", type=_checked(int, "seed"), default=0, help="random seed (default 0)")
    p.add_argument("--shape-model", type=Path, metavar="FILE",
                   help="pelvis shape model .npz (default: the one shipped in seglib)")
    p.renamed("--shape-model", "--model")
    p.add_argument("--appearance", choices=APPEARANCE_NAMES, default="default",
                   help="detector look: the default ranges, another noise/contrast/blur range (shifted), "
                        "both spanned (wide), or films as they come from the clinic: implants, lead shields, "
                        "processing, tight fields (clinical)")
    p.add_argument("--workers", type=_checked(int, "workers"), help="rendering processes (default: up to 2)")
    p.set_defaults(handler=_phantom)


def _phantom(args):
    from seglib.phantom.dataset import write_phantom_dataset
    from seglib.phantom.exposure import APPEARANCES

    print(write_phantom_dataset(args.out, n=args.n, size=args.film_size, seed=args.seed, workers=args.workers,
                                appearance=APPEARANCES[args.appearance], model_path=args.shape_model))


def _add_atlas(commands):
    p = commands.add_parser("atlas", description="build the pelvis shape model from the CT atlas surfaces")
    p.add_argument("--atlas", required=True, type=Path,
                   help="atlas folder with left/, right/, sacrum/ VTK meshes (e.g. ../shared/data/pelvis_atlas)")
    p.renamed("--atlas", "--surfaces")
    p.add_argument("--out", type=Path, help="model file to write (default: the one shipped in seglib)")
    p.add_argument("--exclude", nargs="+", default=(), help="atlas ids to leave out (held-out experiments)")
    p.add_argument("--force", action="store_true", help="replace a shape model file (never any other file)")
    p.set_defaults(handler=_atlas)


def _atlas(args):
    from seglib.phantom import shape_model

    model = shape_model.build_atlas_model(args.atlas, args.out, exclude=args.exclude, force=args.force)
    print(f"{args.out or shape_model.DEFAULT_MODEL}: {len(model.subjects)} subjects, {len(model.sd)} modes, "
          f"{100 * model.variance_kept:.1f}% of the shape variance")


def _add_render_atlas(commands):
    p = commands.add_parser("render-atlas", description="render real atlas pelves (e.g. held-out ones) as AP films")
    p.add_argument("--atlas", required=True, type=Path, help="atlas folder (left/, right/, sacrum/)")
    p.renamed("--atlas", "--surfaces")
    p.add_argument("--ids", required=True, nargs="+", help="atlas ids to render")
    p.add_argument("--out", required=True, type=Path, help="new dataset folder")
    p.add_argument("--poses", type=_checked(int, "poses"), default=6, help="random poses per subject (default 6)")
    p.add_argument("--film-size", type=_checked(int, "film_size"), default=256, metavar="PX",
                   help="side of the rendered films in pixels (default 256)")
    p.renamed("--film-size", "--size")
    p.add_argument("--seed", type=_checked(int, "seed"), default=0,
                   help="random seed of poses, femurs and look (default 0)")
    p.add_argument("--appearance", choices=APPEARANCE_NAMES, default="default",
                   help="detector look: the default ranges, another noise/contrast/blur range (shifted), "
                        "both spanned (wide), or films as they come from the clinic: implants, lead shields, "
                        "processing, tight fields (clinical)")
    p.add_argument("--shape-model", type=Path, metavar="FILE", help="shape model giving the pelvic frame (default: shipped)")
    p.renamed("--shape-model", "--model")
    p.set_defaults(handler=_render_atlas)


def _render_atlas(args):
    from seglib.phantom.dataset import write_atlas_renderings
    from seglib.phantom.exposure import APPEARANCES

    print(write_atlas_renderings(args.out, args.atlas, args.ids, poses=args.poses, size=args.film_size,
                                 seed=args.seed, appearance=APPEARANCES[args.appearance], model_path=args.shape_model))


def _add_pretrain(commands):
    p = commands.add_parser("pretrain", description="rebuild the shipped pelvis model from the CT atlas (hours on a CPU; "
                                             "resumable)")
    p.add_argument("--atlas", required=True, type=Path, help="atlas folder (left/, right/, sacrum/), "
                                                             "e.g. ../shared/data/pelvis_atlas")
    p.add_argument("--work", required=True, type=Path,
                   help="working folder: shape model, films, the training run, held-out films and metrics; "
                        "run again with the same --work to continue an interrupted rebuild")
    p.add_argument("--out", required=True, type=Path,
                   help="the shipped run folder to write (seglib/models/pelvis replaces the shipped one)")
    p.add_argument("--force", action="store_true", help="replace an earlier pretrain output in --out")
    p.add_argument("--base", help="fine-tune this network in the clinical stage instead of training the first "
                                  "stage from random weights: a pretrained model's name (pelvis) or a finished run")
    p.set_defaults(handler=_pretrain, interrupted="run the same command again: it continues where it stopped")


def _pretrain(args):
    from seglib.workflow.build_pelvis_model import build_pretrained

    print(build_pretrained(args.atlas, args.work, args.out, force=args.force, base=args.base))


def _add_train(commands):
    p = commands.add_parser("train", description="train a U-Net for one structure (or several) into a run directory")
    p.add_argument("--data", required=True, type=Path, help="dataset folder in the standard layout")
    p.add_argument("--structure", required=True, action="append", type=_structure,
                   help="structure to segment (mask folder name); repeat for a multi-output model")
    p.add_argument("--out", required=True, type=Path, help="run directory to create")
    p.add_argument("--profile", choices=PROFILES, default="demo", help="size preset (default demo)")
    _add_config_options(p)
    p.add_argument("--force", action="store_true", help="replace an existing run directory")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out from its last backup (same options)")
    p.add_argument("--cpu-devices", type=int, metavar="N",
                   help="split the CPU into N logical devices (MirroredStrategy replicas without GPUs)")
    p.set_defaults(handler=_train, interrupted="continue the run with the same command and --resume")


def _config_options() -> list[dataclasses.Field]:
    """The RunConfig fields the command line offers: those declared with config.option(...)."""
    return [f for f in dataclasses.fields(RunConfig) if "help" in f.metadata]


# The values each numeric option may take (argparse's int and float accept 0, -1 and nan): checked
# while parsing, so an impossible value is refused before any file is read or written. The RunConfig
# options' and the threshold's rules are seglib.config's, which also checks them in config.json.
_AT_LEAST_ONE = (lambda v: v >= 1, "at least 1")
_OPTION_RULES = {**VALUE_RULES, "image_count": (lambda v: v >= 0, "a number of images, 0 or more"),
                 "film_size": VALUE_RULES["image_size"], "n": _AT_LEAST_ONE, "poses": _AT_LEAST_ONE,
                 "workers": _AT_LEAST_ONE, "fraction": (lambda v: 0 < v <= 1, "a fraction above 0, at most 1"),
                 "min_object_fraction": (lambda v: 0 <= v < 1, "a fraction from 0 up to (not including) 1")}


def _checked(kind, name: str):
    """argparse type: `kind`, finite, and within _OPTION_RULES[name] when it has one."""
    def parse(text: str):
        value = kind(text)  # ValueError: argparse says "invalid int value"
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        valid, expected = _OPTION_RULES.get(name, (lambda v: True, ""))
        if not valid(value):
            raise argparse.ArgumentTypeError(f"{text} is not allowed; expected {expected}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _add_config_options(p) -> None:
    """--NAME for each offered RunConfig field, typed like its default, with its help and choices.
    Each defaults to None: the profile's value then applies."""
    for f in _config_options():
        flag, extra = "--" + f.name.replace("_", "-"), {k: v for k, v in f.metadata.items() if k != "help"}
        default = f"default: the profile's, else {'none' if f.default == '' else f.default}"
        if isinstance(f.default, bool):  # --augment / --no-augment
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                           help=f"{f.metadata['help']} ({default})")
        else:
            kind = str if f.default is None else type(f.default)
            kind = kind if kind is str else _checked(kind, f.name)
            p.add_argument(flag, type=kind, help=f"{f.metadata['help']} ({default})", **extra)


def _train(args):
    from seglib.training.fit import train

    if args.cpu_devices:
        from seglib.training.hardware import split_cpu

        split_cpu(args.cpu_devices)  # before TensorFlow runs its first op
    if args.force and args.out.is_dir() and any(args.out.iterdir()):  # the new run is trained beside the old one
        args.interrupted = f"{args.out} still holds the earlier run; nothing of the new one was kept"
    options = {f.name: getattr(args, f.name) for f in _config_options()}
    # absolute, so the run can be resumed or compared from any working directory (notebooks run in notebooks/)
    config = profile_config(args.profile, data=str(resolved(args.data)), structures=tuple(args.structure), **options)
    print(train(config, args.out, force=args.force, resume=args.resume))


def _add_predict(commands):
    p = commands.add_parser("predict", description="probability maps and masks per structure, in dataset layout")
    p.add_argument("--runs", required=True, action="extend", nargs="+", type=Path, metavar="RUN", help="run directories, one per structure")
    p.renamed("--runs", "--run", nargs=None)
    p.add_argument("--images", required=True, type=Path, help="folder of images")
    p.add_argument("--out", required=True, type=Path, help="output folder to create")
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation with partner swap")
    p.add_argument("--subset", choices=("train", "val", "test"), help="only the images of this split of the run")
    p.add_argument("--threshold", type=_checked(float, "threshold"), default=0.5, help="probability at or above which a pixel is in the mask (default 0.5)")
    p.add_argument("--force", action="store_true", help="replace an earlier predict output folder (never anything else)")
    p.set_defaults(handler=_predict, interrupted=NOTHING_WRITTEN)


def _predict(args):
    from seglib.inference.predictor import predict_folder

    print(predict_folder(args.runs, args.images, args.out, tta=args.tta, subset=args.subset,
                         threshold=args.threshold, force=args.force))


def _add_fuse(commands):
    p = commands.add_parser("fuse", description="predict with per-bone runs and fuse into one label map per image")
    _add_folder_inference_options(p, images="folder of images")
    p.add_argument("--subset", choices=("train", "val", "test"), help="only the images of this split")
    p.add_argument("--strategy", default="argmax", choices=FUSION_STRATEGIES,
                   help="argmax: a contested pixel goes to the more confident model (default); priority: to the first of "
                        "--priority; multilabel: both keep it")
    p.add_argument("--priority", nargs="+", type=_structure, help="structure order for --strategy priority")
    p.add_argument("--no-largest-component", dest="largest_component", action="store_false",
                   help="keep every connected component, not only the largest per structure")
    p.add_argument("--no-fill-holes", dest="fill_holes", action="store_false", help="leave holes inside a structure unfilled")
    p.add_argument("--min-object-fraction", type=_checked(float, "min_object_fraction"), default=0.0,
                   help="remove components smaller than this fraction of the image's pixels "
                        "(e.g. 0.001 = 0.1 %%); 0 keeps all")
    p.set_defaults(handler=_fuse, interrupted=NOTHING_WRITTEN)


def _add_folder_inference_options(p, images: str, shipped_models: bool = False, images_list: bool = False) -> None:
    """The options fuse and segment share: per-structure runs (or, with `shipped_models`, a model that ships
    with seglib) over a folder of images (or, with `images_list`, a list of films)."""
    models = p.add_mutually_exclusive_group(required=True) if shipped_models else p
    models.add_argument("--runs", required=not shipped_models, action="extend", nargs="+", type=Path, metavar="RUN",
                        help="run directories, one per structure")
    if shipped_models:
        models.add_argument("--model", choices=PRETRAINED_MODELS,
                            help="a pretrained model that ships with seglib, instead of --runs (README, Pretrained model)")
    source = p.add_mutually_exclusive_group(required=True) if images_list else p
    source.add_argument("--images", required=not images_list, type=Path, help=images)
    if images_list:
        source.add_argument("--images-list", type=Path, metavar="FILE",
                            help="instead of --images: a text file with one film path a line, or a .csv with a path "
                                 "column (and optionally id); relative paths are relative to FILE's folder")
    p.add_argument("--out", required=True, type=Path, help="output folder to create")
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation with partner swap")
    p.add_argument("--threshold", type=_checked(float, "threshold"), default=0.5,
                   help="probability below which a pixel is background (default 0.5)")
    p.add_argument("--force", action="store_true",
                   help=f"replace an earlier {p.prog.split()[-1]} output folder (never anything else)")


def _fuse(args):
    from seglib.inference.predictor import fuse_folder

    print(fuse_folder(args.runs, args.images, args.out, tta=args.tta, subset=args.subset, force=args.force,
                      strategy=args.strategy, priority=args.priority, threshold=args.threshold,
                      largest_component=args.largest_component, fill_holes=args.fill_holes,
                      min_object_fraction=args.min_object_fraction))


def _add_evaluate(commands):
    p = commands.add_parser("evaluate", description="metrics per (image, structure) of a prediction folder")
    p.add_argument("--pred", required=True, type=Path, help="prediction folder (masks/<structure>/<id>.png)")
    p.add_argument("--data", required=True, type=Path, help="dataset with the ground truth")
    p.add_argument("--out", required=True, type=Path, help="metrics CSV to write")
    p.add_argument("--method", default="model", help="name of the method in the table")
    p.add_argument("--uwmgi", action="store_true",
                   help="add the UW-Madison GI tract score: 0.4*Dice + 0.6*(1 - Hausdorff / image diagonal)")
    p.add_argument("--allow-missing", action="store_true",
                   help="score the images that have predictions and list those that have none (default: error)")
    p.add_argument("--force", action="store_true",
                   help="replace a metrics CSV that evaluate wrote (never any other file, nor one inside a run, "
                        "a dataset or a prediction folder)")
    p.set_defaults(handler=_evaluate, interrupted=NOTHING_WRITTEN)


def _evaluate(args):
    from seglib.evaluation.folder import evaluate_folder
    from seglib.evaluation.statistics import summarise

    table = evaluate_folder(args.pred, args.data, method=args.method, uwmgi=args.uwmgi,
                            allow_missing=args.allow_missing, out=args.out, force=args.force)
    columns = ["method", "structure", "n_images", "dice_mean", "dice_std", "hd95_mean", "hd95_std"]
    print(summarise(table)[columns].to_string(index=False, float_format="%.3f"))


def _add_check(commands):
    p = commands.add_parser("check", description="validate a dataset; non-zero exit when it has problems")
    p.add_argument("--data", required=True, type=Path, help="dataset folder to validate")
    p.renamed("--data", "dataset")
    p.add_argument("--structure", action="append", type=_structure, help="structures to check (default: all)")
    p.set_defaults(handler=_check)


def _check(args):
    from seglib.data.validation import check_dataset, has_errors

    problems = check_dataset(args.data, args.structure)
    for problem in problems:
        print(problem)
    errors = sum(p.level == "error" for p in problems)
    print(f"{args.data}: {errors} error(s), {len(problems) - errors} warning(s)")
    return 1 if has_errors(problems) else 0


def _add_import(commands):
    p = commands.add_parser("import", description="convert a dataset of another format into the standard layout")
    p.add_argument("--from", required=True, choices=sorted(IMPORT_FORMATS), dest="source_format", metavar="FORMAT",
                   help="the format of --data: labels: label-value masks + labels.json; uwmgi: Kaggle UW-Madison GI "
                        "tract (train.csv RLE + 16-bit slices); sides: leftMask/ rightMask/ folders; dicom: .dcm "
                        "images; dicom-seg: DICOM SEG files + the DICOM images they reference, anywhere under --data")
    p.renamed("--from", "--format")
    p.add_argument("--data", required=True, type=Path, help="folder in the --from format to convert (only read)")
    p.renamed("--data", "source")
    p.add_argument("--out", required=True, type=Path, help="new dataset folder")
    p.add_argument("--structure", default="lung", type=_structure,
                   help="sides: masks become left_<structure>, right_<structure>")
    p.add_argument("--side-convention", choices=SIDE_CONVENTIONS, default="patient",
                   help="sides: whether leftMask means the patient's left (default) or the image's left")
    p.set_defaults(handler=_import, interrupted=NOTHING_WRITTEN)


def _import(args):
    from seglib.data.adapters import import_dataset

    sides = args.source_format == "sides"
    options = {"structure": args.structure, "side_convention": args.side_convention} if sides else {}
    print(import_dataset(args.source_format, args.data, args.out, **options))


def _add_demo(commands):
    p = commands.add_parser("demo", description="run the notebooks 01-03 in sequence (the main job)")
    p.add_argument("--profile", choices=PROFILES, default="demo", help="size preset (default demo)")
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
    p = commands.add_parser("segment", description="batch inference: label maps at original size, overlays, areas.csv; "
                                            "streaming, resumable, sharded, on one machine or a Ray cluster")
    _add_folder_inference_options(p, images="folder of images of any sizes", shipped_models=True, images_list=True)
    p.add_argument("--format", nargs="+", choices=SEGMENT_FORMATS, default=["png"], dest="formats",
                   help="png (default): labels/ and overlays/; nifti: nifti/<id>.nii.gz with pixel spacing + colour "
                        "tables for ITK-SNAP and 3D Slicer; dicom-seg: dicom-seg/<id>.dcm referencing each DICOM "
                        "input (other inputs are named on stderr and get their other formats; refused when no "
                        "input is DICOM). Several at once: --format png nifti dicom-seg")
    p.add_argument("--overlays", choices=OVERLAY_CHOICES, default="all",
                   help="which films get a colour overlay (png format): all (default), flagged (those quality.csv "
                        "flags: not segmentable, a structure empty or little trusted), none (an archive: labels and "
                        "tables only)")
    p.add_argument("--resume", action="store_true",
                   help="finish an interrupted segment in --out (same options): films already written are kept")
    p.add_argument("--shard", type=_shard, metavar="I/N",
                   help="only the I-th of N shares of the films (by a hash of the id), e.g. one job of a Slurm "
                        "array; join the shard folders with `seglib merge`")
    p.add_argument("--batch-size", type=_checked(int, "batch_size"), default=8, help="films per network call (default 8)")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run on Ray Data: a local Ray on this machine's cores, or the cluster at ADDRESS "
                        "(e.g. 10.0.0.1:6379, or auto); needs pip install 'seglib[ray]'")
    p.add_argument("--workers", type=_checked(int, "workers"),
                   help="with --ray: actors, each with the model loaded once (default: one per GPU, else 1)")
    p.set_defaults(handler=_segment)


def _shard(text: str) -> tuple[int, int]:
    from seglib.inference.archive import parse_shard

    try:
        return parse_shard(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _segment(args):
    from seglib.inference.segment import segment

    args.interrupted = (f"{args.out} is as it was; nothing of the new run was kept" if args.force else
                        f"the films finished so far are kept in {args.out}; the same command with --resume "
                        "segments the rest")
    print(segment(args.images, args.out, model=args.model, runs=args.runs, images_list=args.images_list,
                  formats=args.formats, tta=args.tta, threshold=args.threshold, overlays=args.overlays,
                  resume=args.resume, force=args.force, shard=args.shard, batch_size=args.batch_size,
                  ray=args.ray, workers=args.workers))


def _add_merge(commands):
    p = commands.add_parser("merge", description="join the tables of the shard folders of one `segment --shard I/N` run")
    p.add_argument("shards", nargs="+", type=Path, help="the complete shard folders, all N of them")
    p.add_argument("--out", required=True, type=Path,
                   help="new folder: areas.csv, quality.csv, labels.json, films.csv (which shard folder holds each "
                        "film's files)")
    p.add_argument("--force", action="store_true", help="replace an earlier merge output (never anything else)")
    p.set_defaults(handler=_merge, interrupted=NOTHING_WRITTEN)


def _merge(args):
    from seglib.inference.archive import merge_shards

    print(merge_shards(args.shards, args.out, force=args.force))


def _add_export(commands):
    p = commands.add_parser("export", description="export a run's model as a TensorFlow SavedModel for serving")
    p.add_argument("--runs", required=True, action="extend", nargs=1, type=Path, metavar="RUN",
                   help="the run directory to export (one; the SavedModel goes inside)")
    p.renamed("--runs", "--run")
    p.add_argument("--out", type=Path, help="default RUN/saved_model")
    p.set_defaults(handler=_export, interrupted=NOTHING_WRITTEN)


def _export(args):
    from seglib.inference.saved_model import export_run

    if len(args.runs) > 1:
        raise ValueError(f"export: --runs takes one run directory, got {len(args.runs)}; export them one at a time")
    print(export_run(args.runs[0], args.out))


def _add_baseline(commands):
    p = commands.add_parser("baseline", description="classical segmentation baseline into a prediction folder")
    p.add_argument("--method", required=True, choices=sorted(BASELINE_METHODS), help="classical method")
    p.add_argument("--images", required=True, type=Path, help="folder of images")
    p.add_argument("--structure", required=True, action="append", type=_structure, help="e.g. left_hip and right_hip")
    p.add_argument("--out", required=True, type=Path, help="output folder to create")
    p.add_argument("--force", action="store_true", help="replace an earlier baseline output folder (never anything else)")
    p.add_argument("--runs", action="extend", nargs="+", type=Path, metavar="RUN",
                   help="with --subset: the runs whose split.csv names the images (the first run's, as in predict)")
    p.renamed("--runs", "--subset-of", nargs=None)
    p.add_argument("--subset", choices=("train", "val", "test"), help="only the images of this split of --runs")
    p.set_defaults(handler=_baseline, interrupted=NOTHING_WRITTEN)


def _baseline(args):
    from seglib.data.layout import list_images
    from seglib.inference.baselines import predict_baseline_folder
    from seglib.inference.predictor import select_ids

    if args.subset and not args.runs:
        raise ValueError(f"baseline: --subset {args.subset} needs --runs RUN, the run whose split.csv "
                         "names the images of each subset")
    ids = list(select_ids(list_images(args.images), args.runs[0], args.subset)) if args.subset else None
    print(predict_baseline_folder(args.method, args.images, args.out, args.structure, ids=ids, force=args.force))


def _add_bench(commands):
    p = commands.add_parser("bench", description="input pipeline, training and inference speed; writes reports/benchmarks/PROFILE.md")
    p.add_argument("--profile", choices=PROFILES, default="smoke", help="size preset (default smoke)")
    p.add_argument("--out", type=Path, help="markdown report to write (default reports/benchmarks/PROFILE.md)")
    p.add_argument("--force", action="store_true", help="replace an earlier benchmark report (never any other file)")
    p.add_argument("--compare", action="store_true",
                   help="train seglib's default and the bare Keras network of the same architecture one after the "
                        "other; print test Dice, seconds and the ratio (writes no report)")
    p.add_argument("--data", type=Path, help="with --compare: dataset (default: the profile's phantoms)")
    p.add_argument("--structure", default="left_hip", type=_structure,
                   help="with --compare: the structure (default left_hip)")
    p.set_defaults(handler=_bench)


def _bench(args):
    from seglib.experiments.bare_network_comparison import run_comparison
    from seglib.experiments.bench import default_report_path, run_benchmark

    if args.compare:
        print(run_comparison(args.profile, data=args.data, structure=args.structure))
        return
    out = args.out or default_report_path(args.profile)
    run_benchmark(args.profile, out=out, force=args.force)
    print(out)


def _add_split(commands):
    p = commands.add_parser("split", description="write a fixed-count split file (the benchmark protocol) for --split-file")
    p.add_argument("--data", required=True, type=Path, help="dataset folder whose images are split")
    p.renamed("--data", "dataset")
    p.add_argument("--out", required=True, type=Path, help="CSV id,split to write")
    p.add_argument("--test", type=_checked(int, "image_count"), required=True, help="number of test images (the first after shuffling)")
    p.add_argument("--val", type=_checked(int, "image_count"), required=True, help="number of validation images (the last)")
    p.add_argument("--seed", type=int, default=0, help="random.Random(seed) shuffles the sorted ids")
    p.set_defaults(handler=_split)


def _split(args):
    from seglib.data.splits import write_fixed_count_split

    split = write_fixed_count_split(args.data, args.out, args.test, args.val, args.seed)
    counts = Counter(split.values())
    print(f"{args.out}: " + ", ".join(f"{counts[name]} {name}" for name in sorted(counts)))


def _add_ablation(commands):
    p = commands.add_parser("ablation", description="train with and without each symmetry component; table and chart")
    p.add_argument("--data", required=True, type=Path, help="dataset folder in the standard layout")
    p.add_argument("--structure", required=True, action="append", type=_structure,
                   help="a mirror pair: --structure LEFT --structure RIGHT")
    p.renamed("--structure", "--structures", nargs=2)
    p.add_argument("--out", type=Path, help="where the table and chart go (default reports/ablation/<dataset folder name>)")
    p.add_argument("--work", type=Path, default=Path("runs/ablation"),
                   help="the runs go to WORK/<dataset folder name>, reused if complete (default runs/ablation)")
    p.add_argument("--profile", choices=PROFILES, default="demo", help="size preset (default demo)")
    p.add_argument("--epochs", type=_checked(int, "epochs"), help="the fixed budget (default: the profile's)")
    p.add_argument("--fractions", type=_checked(float, "fraction"), nargs="+", default=[1.0, 0.25],
                   help="fractions of the training images to train on (default 1.0 0.25)")
    p.add_argument("--split-file", help="fixed split (id,split); default: the seeded split")
    p.add_argument("--configurations", nargs="+", choices=ABLATION_CONFIGURATIONS,
                   help="configurations to train (default: all)")
    p.add_argument("--force", action="store_true", help="replace an earlier ablation output in --out (never anything else)")
    p.set_defaults(handler=_ablation)


def _ablation(args):
    from seglib.experiments.ablation import ablation_folders, run_ablation

    name = args.data.absolute().name
    out = args.out or ablation_folders(name)[0]  # where notebook 03 looks for the results too
    table = run_ablation(args.data, args.structure, out, args.work / name, profile=args.profile,
                         fractions=args.fractions, epochs=args.epochs, split_file=args.split_file,
                         configurations=args.configurations, force=args.force)
    print(table.round(3).to_string(index=False))


def _add_report(commands):
    p = commands.add_parser("report", description="report.md + report.html: metric tables, paired margins, box plots, "
                                           "overlays of every method, fused label maps, left/right confusion")
    p.add_argument("--pred", nargs="+", default=[], type=_named_path, metavar="NAME=DIR",
                   help="prediction folders (masks/<structure>/<id>.png), each with its method name; needs --data")
    p.add_argument("--data", type=Path, help="dataset with the ground truth")
    p.add_argument("--eval", nargs="+", default=[], type=Path, help="metrics CSVs written by evaluate (more methods)")
    p.add_argument("--method", action="extend", nargs="+", default=[], type=_named_runs, metavar="NAME=RUN[,RUN...]",
                   help="a method's name and its training run dirs, for the training section")
    p.renamed("--method", "--runs")
    p.add_argument("--reference", help="the method the others are measured against (default: the first)")
    p.add_argument("--no-images", dest="show_images", action="store_false",
                   help="leave out the figures that show the images (when their licence forbids sharing them)")
    p.add_argument("--out", required=True, type=Path,
                   help="new folder for report.md, report.html, tables and figures (written complete or not at all)")
    p.add_argument("--force", action="store_true", help="replace an earlier report folder (never anything else)")
    p.set_defaults(handler=_report, interrupted=NOTHING_WRITTEN)


def _named_path(text: str, expected: str = "NAME=DIR") -> tuple[str, Path]:
    name, separator, path = text.partition("=")
    if not separator or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}")
    return name, Path(path)


def _named_runs(text: str) -> tuple[str, list[Path]]:
    name, path = _named_path(text, "NAME=RUN[,RUN...]")
    return name, [Path(p) for p in str(path).split(",")]


def _report(args):
    import pandas as pd

    from seglib.reporting.document import build_report

    if not args.pred and not args.eval:
        raise ValueError("report: give prediction folders (--pred NAME=DIR --data DATASET) or metrics CSVs (--eval)")
    if args.pred and args.data is None:
        raise ValueError("report: --pred needs --data, the dataset with the ground truth")
    for option, pairs in (("--pred", args.pred), ("--method", args.method)):
        names = [name for name, _ in pairs]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:  # a dict would silently keep only the last one
            raise ValueError(f"report: {option} names method {repeated[0]!r} twice")
    extra = pd.concat([_metrics_table(path) for path in args.eval], ignore_index=True) if args.eval else None
    print(build_report(args.out, dict(args.pred), args.data, reference=args.reference, runs=dict(args.method),
                       extra_metrics=extra, show_images=args.show_images, force=args.force, inputs=args.eval))


def _metrics_table(path: Path):
    """A metrics CSV written by evaluate, or an error naming the file (empty, not UTF-8, no dice column...)."""
    from seglib.data.io import read_table
    from seglib.evaluation.folder import METRICS_COLUMNS

    return read_table(path, required=METRICS_COLUMNS, text_columns=METRICS_COLUMNS[:3])
