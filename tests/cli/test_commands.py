"""The command line."""

import subprocess
import sys

import pytest

from seglib.cli.commands import _parser
from seglib.config import RunConfig
from seglib.networks.unet import build_model


def test_command_line_help_does_not_load_tensorflow():
    # `--help` on any command builds the whole parser; it should answer in about a second, not four.
    code = "import sys; from seglib.cli.commands import _parser; _parser(); print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


TRAIN = ["train", "--data", "d", "--structure", "left_hip", "--out", "r"]


def _train_choices(option: str) -> list[str]:
    import argparse

    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(next(a for a in commands.choices["train"]._actions if option in a.option_strings).choices)


def test_the_command_line_offers_exactly_the_architectures_build_model_knows(capsys):
    offered = _train_choices("--architecture")
    assert sorted(offered) == ["attention_unet", "resunet", "unet"]  # the README's train synopsis
    for architecture in offered:  # each one the parser accepts is one build_model builds
        assert _parser().parse_args([*TRAIN, "--architecture", architecture]).architecture == architecture
        config = RunConfig(architecture=architecture, image_size=32, depth=2, base_filters=4)
        assert build_model(config).name.startswith(architecture)
    with pytest.raises(ValueError, match="unknown architecture 'segformer'; choose one of unet, resunet"):
        build_model(RunConfig(architecture="segformer", image_size=32, depth=2, base_filters=4))
    with pytest.raises(SystemExit) as exit:
        _parser().parse_args([*TRAIN, "--architecture", "segformer"])
    assert exit.value.code == 2 and "invalid choice: 'segformer'" in capsys.readouterr().err


def test_every_option_of_every_command_has_help_text():
    import argparse

    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    undocumented = [f"{name} {action.option_strings or action.dest}" for name, parser in commands.choices.items()
                    for action in parser._actions if not action.help]
    assert not undocumented


def test_train_options_reach_the_run_config_and_unset_ones_keep_the_profile(monkeypatch, tmp_path):
    import seglib.training.fit
    from seglib.cli.commands import main
    from seglib.config import profile_config

    seen = {}
    monkeypatch.setattr(seglib.training.fit, "train", lambda config, out, **_: seen.setdefault("config", config))
    assert main(["train", "--data", str(tmp_path), "--structure", "left_hip", "--out", str(tmp_path / "run"),
                 "--profile", "smoke", "--epochs", "3", "--no-augment", "--lr-schedule", "plateau",
                 "--learning-rate", "0.01", "--split-file", "split.csv"]) == 0
    config, smoke = seen["config"], profile_config("smoke")
    assert (config.epochs, config.augment, config.lr_schedule, config.learning_rate, config.split_file) == (
        3, False, "plateau", 0.01, "split.csv")
    assert (config.image_size, config.depth, config.mirror_flip) == (smoke.image_size, smoke.depth, smoke.mirror_flip)


@pytest.mark.parametrize("option, value, expected", [
    ("--epochs", "0", "argument --epochs: 0 is not allowed; expected at least 1 (0 epochs would train nothing)"),
    ("--learning-rate", "-1", "argument --learning-rate: -1 is not allowed; expected a positive number"),
    ("--learning-rate", "0", "argument --learning-rate: 0 is not allowed; expected a positive number"),
    ("--checkpoint-seconds", "nan", "argument --checkpoint-seconds: 'nan' is not a finite number"),
    ("--dropout", "1", "argument --dropout: 1 is not allowed; expected a rate from 0 up to (not including) 1"),
    ("--val-fraction", "inf", "argument --val-fraction: 'inf' is not a finite number"),
])
def test_impossible_training_options_are_refused_before_any_work(capsys, option, value, expected):
    with pytest.raises(SystemExit) as exit:
        _parser().parse_args([*TRAIN, option, value])
    assert exit.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(expected)


@pytest.mark.parametrize("option, value", [("learning_rate", -1), ("epochs", 0), ("dropout", 1.0), ("image_size", 0)])
def test_the_python_api_refuses_what_the_command_line_refuses(option, value):
    from seglib.config import profile_config

    for make in (RunConfig, lambda **given: profile_config("smoke", **given)):
        with pytest.raises(ValueError, match=f"^{option} {value!r} is not allowed; expected "):
            make(**{option: value})


@pytest.mark.parametrize("command, expected", [
    ("phantom --out o --n 0", "argument --n: 0 is not allowed; expected at least 1"),
    ("phantom --out o --film-size 0", "argument --film-size: 0 is not allowed; expected a number of pixels from 1"),
    ("render-atlas --atlas a --ids 1 --out o --poses 0", "argument --poses: 0 is not allowed; expected at least 1"),
    ("ablation --data d --structure l --structure r --fractions 1 0",
     "argument --fractions: 0 is not allowed; expected a fraction above 0, at most 1"),
    ("fuse --runs r --images i --out o --min-object-fraction 1",
     "argument --min-object-fraction: 1 is not allowed; expected a fraction from 0 up to (not including) 1"),
    ("segment --model pelvis --images i --out o --ray --workers 0",
     "argument --workers: 0 is not allowed; expected at least 1"),
])
def test_impossible_values_of_the_other_commands_are_refused_while_parsing(capsys, command, expected):
    with pytest.raises(SystemExit) as exit:
        _parser().parse_args(command.split())
    assert exit.value.code == 2
    assert expected in capsys.readouterr().err.splitlines()[-1]


@pytest.mark.parametrize("option", ["--test", "--val"])
def test_split_refuses_a_negative_number_of_images(capsys, option):
    counts = {"--test": "1", "--val": "1", option: "-1"}
    with pytest.raises(SystemExit):
        _parser().parse_args(["split", "--data", "d", "--out", "s.csv", *[x for pair in counts.items() for x in pair]])
    assert f"argument {option}: -1 is not allowed; expected a number of images, 0 or more" in capsys.readouterr().err


def test_ablation_refuses_zero_epochs(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["ablation", "--data", "d", "--structure", "left_hip", "--structure", "right_hip", "--epochs", "0"])
    assert "argument --epochs: 0 is not allowed" in capsys.readouterr().err


THRESHOLD_COMMANDS = {"predict": ["predict", "--runs", "r", "--images", "i", "--out", "o"],
                      "fuse": ["fuse", "--runs", "r", "--images", "i", "--out", "o"],
                      "segment": ["segment", "--model", "pelvis", "--images", "i", "--out", "o"]}


@pytest.mark.parametrize("command", THRESHOLD_COMMANDS)
@pytest.mark.parametrize("value, expected", [
    ("nan", "'nan' is not a finite number"),
    ("-1", "-1 is not allowed; expected a probability between 0 and 1, both excluded"),
    ("0", "0 is not allowed; expected a probability between 0 and 1, both excluded"),
    ("1", "1 is not allowed; expected a probability between 0 and 1, both excluded"),
])
def test_every_threshold_option_refuses_what_is_no_probability(capsys, command, value, expected):
    # predict accepted nan and -1 (empty or full masks, and NaN in predict.json) where segment and fuse refused them
    with pytest.raises(SystemExit) as exit:
        _parser().parse_args([*THRESHOLD_COMMANDS[command], "--threshold", value])
    assert exit.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"argument --threshold: {expected}")


@pytest.mark.parametrize("option", ["--data", "--out", "--init"])
def test_a_symbolic_link_loop_is_named_in_one_line(tmp_path, capsys, option):
    from conftest import write_square_dataset

    from seglib.cli.commands import main

    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop_back")
    (tmp_path / "loop_back").symlink_to(loop)
    given = {"--data": str(write_square_dataset(tmp_path / "data", n=2)), "--out": str(tmp_path / "run"),
             **{option: str(loop)}}
    init = ["--init", given.pop("--init")] if option == "--init" else []
    assert main(["train", *[x for pair in given.items() for x in pair], "--structure", "left_thing",
                 "--profile", "smoke", *init]) == 2
    (line,) = capsys.readouterr().err.splitlines()  # was a RuntimeError's traceback
    assert line.startswith(f"error: {loop}: ") and "symbolic link" in line
    assert not (tmp_path / "run").exists()


def test_atlas_out_never_replaces_a_file_that_is_not_a_shape_model(tmp_path, capsys):
    from seglib.cli.commands import main

    notes = tmp_path / "pelvis.npz"
    notes.write_text("the user's own file")
    assert main(["atlas", "--atlas", str(tmp_path / "atlas"), "--out", str(notes)]) == 2
    assert capsys.readouterr().err == f"error: {notes}: already exists; refusing to overwrite (pass --force to replace it)\n"
    assert main(["atlas", "--atlas", str(tmp_path / "atlas"), "--out", str(notes), "--force"]) == 2
    assert "is not a shape model written by atlas; --force replaces only that" in capsys.readouterr().err
    assert notes.read_text() == "the user's own file"
