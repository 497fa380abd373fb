"""Test Dice against training seconds for one seglib run on the real dev set (issue #33), beside MONAI's:
    python reports/benchmarks/time_to_dice.py DATA STRUCTURE SPLIT_CSV RUN_DIR MONAI_DICE [OPTION=VALUE ...]
OPTION=VALUE are RunConfig options over the demo profile's (init=none, epochs=12, learning_rate=0.001; a value is
read as JSON, else as a string). The weights at every epoch end are kept in memory and scored afterwards on the split's
test images by MONAI's protocol (threshold 0.5, no TTA, at the working resolution: bare_network_comparison.mean_test_dice),
so the printout says when the run first reached MONAI_DICE, in the `seconds` of its history.csv (fit time: decoding,
caching, tracing and validation included), and the test Dice of the model the run keeps (best validation Dice)."""

import json
import sys

import keras

from seglib.config import profile_config
from seglib.data.layout import load_records
from seglib.data.splits import records_in
from seglib.experiments.bare_network_comparison import mean_test_dice
from seglib.training.fit import train
from seglib.training.run_dir import RunDir


class EpochWeights(keras.callbacks.Callback):
    """The weights at every epoch end (a copy in memory costs milliseconds, a file would cost seconds)."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(data, structure, split_file, run_dir, monai_dice, *options):
    given = {name: _value(value) for name, value in (option.split("=", 1) for option in options)}
    config = profile_config("demo", data=data, structures=(structure,), split_file=split_file, **given)
    kept = EpochWeights()
    run = RunDir(train(config, run_dir, verbose=0, callbacks=(kept,)))
    test = records_in(load_records(config.data, config.structures), run.split(), "test")
    model, history = run.load_model(), run.history()
    final = mean_test_dice(model, test, config, config.side_aware, standardised=True)
    reached = None
    print(f"{structure} {' '.join(options) or 'default'} (init {config.init or 'none'}, {config.image_size} px, "
          f"lr {config.learning_rate:g}, {config.epochs} epochs):")
    for (epoch, row), weights in zip(history.iterrows(), kept.weights):
        model.set_weights(weights)
        dice = mean_test_dice(model, test, config, config.side_aware, standardised=True)
        print(f"  epoch {epoch + 1:2d}  {row['seconds']:6.1f} s  val {row['val_dice']:.4f}  test {dice:.4f}")
        if reached is None and dice >= monai_dice:
            reached = (row["seconds"], epoch + 1)
    when = f"at {reached[0]:.0f} s (epoch {reached[1]})" if reached else "never"
    print(f"seglib {structure} {' '.join(options) or 'default'}: test dice {final:.4f} (kept model); "
          f"train {run.summary()['train_seconds']:.0f}s; first epoch {history['seconds'].iloc[0]:.1f}s; "
          f"MONAI's {monai_dice:.4f} reached {when}")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(*arguments[:4], float(arguments[4]), *arguments[5:])
