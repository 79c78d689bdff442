"""``python -m optiscope.cli``: the same as the ``optiscope`` command."""

import sys

from optiscope.cli import main

sys.exit(main())
