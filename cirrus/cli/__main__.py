"""`python -m cirrus.cli`: the `cirrus` command."""

import sys

from cirrus.cli import main

sys.exit(main())
