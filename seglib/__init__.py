"""seglib: bilateral bone segmentation in 2D X-rays with Keras 3 and TensorFlow."""

from seglib.keras_objects import register_when_keras_is_imported

__version__ = "0.1.0"

register_when_keras_is_imported()  # saved models load with safe_mode after a plain `import seglib`
