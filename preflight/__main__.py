"""Lets `python -m preflight` behave exactly as the `preflight` console script."""

import sys

from preflight.cli import main

sys.exit(main())
