"""``python -m training --config …`` (also the entry point for ``torchrun`` / ``accelerate launch``)."""

import sys

from training.cli import main

sys.exit(main())
