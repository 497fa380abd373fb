"""The first epoch's fixed cost (issue #33): a 2-epoch `train` of the default network on a dataset, and the seconds of
its first and second epoch, wall and CPU (all threads of the process: steadier than wall time on shared cores). With
`--trace-twice`, the optimizer's and metrics' variables are left to the first traced step, as before issue #33 (Keras
then traces the whole training step twice). Run both one after the other, a few times:
    for twice in --trace-twice ""; do python reports/benchmarks/first_epoch.py DATA STRUCTURE SPLIT_CSV WORK $twice; done
"""

import sys
import tempfile
import time

import keras

import seglib.training.fit as fit
from seglib.config import profile_config


class EpochClocks(keras.callbacks.Callback):
    """Wall and CPU seconds from the start of training to every epoch's end."""

    def on_train_begin(self, logs=None):
        self.started, self.ends = (time.perf_counter(), time.process_time()), []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append((time.perf_counter() - self.started[0], time.process_time() - self.started[1]))


def main(data, structure, split_file, work, *flags):
    if "--trace-twice" in flags:
        fit._create_state = lambda model, config: None
    config = profile_config("demo", data=data, structures=(structure,), split_file=split_file, init="none",
                            epochs=2)
    clocks = EpochClocks()
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        fit.train(config, f"{scratch}/run", verbose=0, callbacks=(clocks,))
    (wall1, cpu1), (wall2, cpu2) = clocks.ends
    print(f"{'trace twice (before)' if flags else 'variables created first (now)'}: first epoch {wall1:.1f} s "
          f"(CPU {cpu1:.1f} s), second {wall2 - wall1:.1f} s (CPU {cpu2 - cpu1:.1f} s)")


if __name__ == "__main__":
    main(*sys.argv[1:])
