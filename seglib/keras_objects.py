"""Every custom Keras object a saved seglib model may need (losses, metrics, models), registered
as soon as both seglib and Keras are imported, in whichever order, so that
`import seglib, keras; keras.saving.load_model(path, safe_mode=True)` works.

Registering means importing the modules that define them, which imports TensorFlow; `import seglib`
alone must stay cheap (`python -m seglib --help` answers in a second). seglib's own loading
(seglib.training.run_dir.RunDir.load_model) registers explicitly before it loads. A user's plain
`keras.saving.load_model` gets no such call: when Keras is imported after seglib, the hook below
registers right after Keras's import (Python has no post-import callback without one).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# Registered names stay "seglib>ClassName" wherever the classes live, so runs saved by older releases load.
SERIALIZABLE_MODULES = ("seglib.losses.dice", "seglib.losses.focal", "seglib.losses.spec", "seglib.training.metrics",
                        "seglib.symmetry.consistency")


def register_keras_objects() -> None:
    for name in SERIALIZABLE_MODULES:
        if name in sys.modules:  # imported, or being imported right now: it registers itself when done
            continue
        try:
            importlib.import_module(name)
        except ImportError as error:
            # Keras was imported by one of these modules, half-way through its own import: a module that
            # imports names from it must wait; it registers itself when seglib imports it (e.g. to train).
            if "partially initialized" not in str(error):
                raise


def register_when_keras_is_imported() -> None:
    if "keras" in sys.modules:
        register_keras_objects()
    elif not any(isinstance(finder, _AfterKerasImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasImport())


class _AfterKerasImport(importlib.abc.MetaPathFinder):
    """Finds `keras` with the other finders and registers seglib's objects right after it loads."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)  # once is enough; also keeps find_spec below from recursing
        spec = importlib.util.find_spec("keras")
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        register_keras_objects()

    def __getattr__(self, name):  # resource readers and the like come from the real loader
        return getattr(self.loader, name)
