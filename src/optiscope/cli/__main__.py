import sys

from optiscope.cli import main

sys.exit(main())
