"""A quiet TensorFlow start: on a machine without a GPU, TensorFlow's C++ start-up prints lines a
user reads as errors ("Could not find cuda drivers", "failed call to cuInit", absl's notice that
logging is not initialised yet), in every command and in notebook cells.

`quiet_tensorflow_start()` (called by `import seglib`, before any seglib module imports TensorFlow):
- sets TF_CPP_MIN_LOG_LEVEL=2 (C++ errors only) unless the user chose a level;
- drops the start-up notices that TensorFlow prints before any level applies (or, for cuInit, as
  an error that only means "no GPU driver"): they are written by C++ straight to file descriptor 2
  while TensorFlow loads and first looks for devices, so that descriptor is caught for that moment
  and every other line is passed on.
A user who sets TF_CPP_MIN_LOG_LEVEL=0 (every message, to debug) sees everything, unfiltered. The
level is inherited, so notebook kernels started by `python -m seglib demo` filter alike.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
from contextlib import contextmanager

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_LOG_LEVEL = "2"  # 0 all, 1 no INFO, 2 no WARNING, 3 no ERROR

# Start-up lines that say nothing is wrong: no GPU here (an expected state on a CPU machine), CUDA
# plug-ins registered twice (Colab's TensorFlow builds), absl's notice before its initialisation,
# and the CPU-instructions notice with its second line.
START_UP_NOISE = re.compile("|".join([
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"Could not find cuda drivers",
    r"failed call to cuInit",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation placer already registered",
    r"Could not find TensorRT",
    r"cpu_feature_guard\.cc",
    r"To enable the following instructions: .* rebuild TensorFlow",
    r"oneDNN custom operations are on",
]))


def quiet_tensorflow_start() -> None:
    """Keep TensorFlow's start-up quiet (see the module doc); a no-op once TensorFlow is loaded."""
    if "tensorflow" in sys.modules:
        return  # too late to change anything
    if os.environ.setdefault(LOG_LEVEL_VARIABLE, DEFAULT_LOG_LEVEL).strip() == "0":
        return  # the user asked for every message
    if not any(isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


@contextmanager
def filtered_stderr(noise: re.Pattern = START_UP_NOISE):
    """Lines written to file descriptor 2 inside the block reach stderr afterwards, except those
    matching `noise`. A file, not a pipe, holds them: a long message cannot block the writer."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 at all (a detached process): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().decode(errors="replace").splitlines(keepends=True)
                    if not noise.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` with the other finders and loads it inside filtered_stderr."""

    def __init__(self):
        self._finding = False  # importlib.util.find_spec below comes back here

    def find_spec(self, fullname, path, target=None):
        if fullname != "tensorflow" or self._finding:
            return None
        self._finding = True
        try:
            spec = importlib.util.find_spec("tensorflow")
        finally:
            self._finding = False
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader, self)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader, finder):
        self.loader, self.finder = loader, finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        if self.finder in sys.meta_path:
            sys.meta_path.remove(self.finder)  # TensorFlow loads once
        with filtered_stderr():
            self.loader.exec_module(module)
            # The CUDA probe ("failed call to cuInit") runs at the first look for devices: do it now.
            module.config.list_physical_devices()

    def __getattr__(self, name):  # resource readers and the like come from the real loader
        return getattr(self.loader, name)
