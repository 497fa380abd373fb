import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, CPU features) hides the command's own output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from seglib.cli.commands import main  # noqa: E402  (after the environment is set)

sys.exit(main())
