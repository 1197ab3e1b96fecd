"""``python -m focalcal.cli``: the ``focalcal`` command (also what ``torchrun -m`` starts)."""

import sys

from . import main

sys.exit(main())
