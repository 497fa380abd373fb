"""One spelling per concept on every command (issue #30), and the spellings it replaced still working for one version,
each with one warning line. The rules run over the real parser: a new command with a drifted flag fails here."""

import argparse
import re
import shlex
from pathlib import Path

import pytest

from seglib import __version__
from seglib.cli.commands import MAINTAINER_COMMANDS, _parser, main
from seglib.config import IMPORT_FORMATS, PRETRAINED_MODELS, SEGMENT_FORMATS

CONCEPTS = {
    "run folders (trained runs)": "--runs",
    "a method, by name (report: with its runs, NAME=RUN,RUN)": "--method",
    "a pretrained model that ships with seglib, by name": "--model",
    "a shape-model file": "--shape-model",
    "the CT atlas folder": "--atlas",
    "the side of rendered films": "--film-size",
    "the network's working resolution": "--image-size",
    "the format of a dataset to import": "--from",
    "segment's output formats": "--format",
    "the dataset folder (read)": "--data",
    "a structure (repeated for several)": "--structure",
    "a folder of images": "--images",
    "what a command writes": "--out",
    "replacing an earlier output of the command": "--force",
    "start from trained weights (train; as segment --model, or a run)": "--init",
    "a working folder kept between runs": "--work",
    "a prediction folder": "--pred",
    "the size preset": "--profile",
    "a split of the runs' images": "--subset",
    "the probability threshold": "--threshold",
    "flip test-time augmentation": "--tta",
    "parallel workers": "--workers",
}
# Spellings replaced by the table's, on every command; and those that still mean another concept elsewhere.
OLD_SPELLINGS = ("--run", "--subset-of", "--surfaces", "--size", "--structures")
OLD_ON = {"report": ("--runs",), "phantom": ("--model",), "render-atlas": ("--model",), "import": ("--format",)}
OLD_POSITIONALS = ("dataset", "source")
# What the flags that mean one thing here and meant another elsewhere must hold.
VALUES = {"--runs": lambda action: action.type is Path,
          "--model": lambda action: tuple(action.choices or ()) == PRETRAINED_MODELS,
          "--format": lambda action: set(action.choices or ("?",)) <= set(SEGMENT_FORMATS),
          "--from": lambda action: set(action.choices or ()) == set(IMPORT_FORMATS)}


def commands() -> dict[str, argparse.ArgumentParser]:
    return next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices


def shown(parser) -> list[argparse.Action]:
    """The arguments a command offers (--help lists them); old spellings are hidden."""
    return [action for action in parser._actions if action.help is not argparse.SUPPRESS]


def dest_of(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def test_every_command_spells_each_concept_the_one_way():
    flag_of_dest = {dest_of(flag): flag for flag in CONCEPTS.values()}
    drifted = []
    for name, parser in commands().items():
        for action in shown(parser):
            flag = action.option_strings[0] if action.option_strings else None
            if flag in OLD_SPELLINGS or flag in OLD_ON.get(name, ()):
                drifted.append(f"{name} {flag}: an old spelling")
            if action.dest in flag_of_dest and flag != flag_of_dest[action.dest]:
                drifted.append(f"{name} {flag or 'positional ' + action.dest}: spell it {flag_of_dest[action.dest]}")
            if not flag and action.dest in OLD_POSITIONALS:
                drifted.append(f"{name} positional {action.dest}: give it as an option")
            if flag in VALUES and not VALUES[flag](action):
                drifted.append(f"{name} {flag}: holds another concept than the table's")
    assert not drifted, drifted


def test_no_help_text_names_a_replaced_spelling():
    for name, parser in commands().items():
        for old in (*OLD_SPELLINGS, *OLD_ON.get(name, ())):
            assert not re.search(rf"(?<![\w-]){old}\b", parser.format_help()), (name, old)


REMOVED_IN = "{}.{}".format(__version__.split(".")[0], int(__version__.split(".")[1]) + 1)
# (command line in an old spelling, the same in the table's, the old spelling as the warning names it, the new)
RENAMED = [
    ("phantom --out o --size 64", "phantom --out o --film-size 64", "--size", "--film-size"),
    ("phantom --out o --model m.npz", "phantom --out o --shape-model m.npz", "--model", "--shape-model"),
    ("atlas --surfaces a", "atlas --atlas a", "--surfaces", "--atlas"),
    ("render-atlas --surfaces a --ids 1 --out o", "render-atlas --atlas a --ids 1 --out o", "--surfaces", "--atlas"),
    ("render-atlas --atlas a --ids 1 --out o --size 64", "render-atlas --atlas a --ids 1 --out o --film-size 64",
     "--size", "--film-size"),
    ("render-atlas --atlas a --ids 1 --out o --model m.npz", "render-atlas --atlas a --ids 1 --out o --shape-model m.npz",
     "--model", "--shape-model"),
    ("predict --run a --run b --images i --out o", "predict --runs a b --images i --out o", "--run", "--runs"),
    ("export --run r", "export --runs r", "--run", "--runs"),
    ("baseline --method otsu --images i --structure s --out o --subset test --subset-of r",
     "baseline --method otsu --images i --structure s --out o --subset test --runs r", "--subset-of", "--runs"),
    ("report --eval m.csv --out o --runs ours=a,b --runs theirs=c", "report --eval m.csv --out o --method ours=a,b theirs=c",
     "--runs", "--method"),
    ("import --format sides --data s --out o", "import --from sides --data s --out o", "--format", "--from"),
    ("import --from sides s --out o", "import --from sides --data s --out o", "SOURCE as a positional argument",
     "--data"),
    ("check d", "check --data d", "DATASET as a positional argument", "--data"),
    ("split d --out s.csv --test 1 --val 1", "split --data d --out s.csv --test 1 --val 1",
     "DATASET as a positional argument", "--data"),
    ("ablation --data d --structures left_hip right_hip", "ablation --data d --structure left_hip --structure right_hip",
     "--structures", "--structure"),
]


@pytest.mark.parametrize("old, new, old_flag, new_flag", RENAMED, ids=[case[2] + " " + case[0].split()[0]
                                                                       for case in RENAMED])
def test_an_old_spelling_parses_as_the_new_one_with_one_warning_line(capsys, old, new, old_flag, new_flag):
    by_old = vars(_parser().parse_args(shlex.split(old)))
    assert capsys.readouterr().err == (f"warning: {old_flag} is deprecated; use {new_flag} "
                                       f"(accepted until seglib {REMOVED_IN})\n")
    assert by_old == vars(_parser().parse_args(shlex.split(new)))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("command, missing", [("check", "--data"), ("import --out o", "--from, --data"),
                                              ("atlas", "--atlas"), ("export", "--runs")])
def test_a_required_option_is_still_required_in_either_spelling(capsys, command, missing):
    with pytest.raises(SystemExit) as exit:
        _parser().parse_args(shlex.split(command))
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].endswith(f"error: the following arguments are required: {missing}")
    assert err.splitlines()[0].startswith(f"usage: python -m seglib {command.split()[0]} [-h] --")  # shown required


def test_an_old_spelling_goes_through_the_new_ones_checks(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["import", "--format", "zip", "--data", "s", "--out", "o"])
    assert "argument --from: invalid choice: 'zip'" in capsys.readouterr().err


def test_the_dataset_as_a_positional_argument_still_checks_it(tmp_path, capsys):
    from conftest import write_square_dataset

    data = write_square_dataset(tmp_path / "d", n=2)
    assert main(["check", str(data)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: DATASET as a positional argument is deprecated; use --data")


def test_export_takes_one_run(capsys):
    assert main(["export", "--runs", "a", "--runs", "b"]) == 2
    assert capsys.readouterr().err == "error: export: --runs takes one run directory, got 2; export them one at a time\n"


def test_help_lists_the_users_commands_apart_from_the_maintainers():
    text = _parser().format_help()
    users, maintainers = text.split("\ncommands:\n")[1].split("\nmaintainer commands")
    listed = {part: re.findall(r"^  (\S+)  ", section, re.MULTILINE)
              for part, section in (("users", users), ("maintainers", maintainers))}
    assert listed["maintainers"] == list(MAINTAINER_COMMANDS)
    assert sorted(listed["users"] + listed["maintainers"]) == sorted(commands())
    assert {"segment", "train", "predict", "check"} <= set(listed["users"])
