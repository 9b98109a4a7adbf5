"""Entry point for `pulumi up` in bootstrap/: builds the resources described in `program.py`."""

import sys
from pathlib import Path

# Pulumi runs this file with bootstrap/ as the working directory; the tests import the
# same code as `bootstrap.program`, so both see the repository root on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bootstrap.program import build

build()
