import sys

# Importing the package first (seglib/__init__) keeps TensorFlow's start-up quiet: seglib.tensorflow_start.
from seglib.cli.commands import main

sys.exit(main())
