"""`python -m skinage` is the `skinage` command."""

import sys

from .cli import main

sys.exit(main())
