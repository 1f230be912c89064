"""``python -m asw_toolkit``: the same as the ``asw-toolkit`` console script."""

import sys

from asw_toolkit.cli import main

sys.exit(main())
