"""`python -m brts.cli`: the same app as the `brts` entry point, imported once from the package."""

import sys

from brts.cli import main

sys.exit(main())
