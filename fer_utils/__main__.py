"""`python -m fer_utils ...`: see fer_utils.cli."""

import sys

from .cli import main

sys.exit(main())
