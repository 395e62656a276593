"""``python -m model_core.cli ...``: the same as the ``streamtalker`` command."""

import sys

from . import main

sys.exit(main())
