"""seglib: bilateral bone segmentation in 2D X-rays with Keras 3 and TensorFlow."""

__version__ = "0.1.0"
