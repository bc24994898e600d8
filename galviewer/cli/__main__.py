"""``python -m galviewer.cli``."""

import sys

from galviewer.cli import main

sys.exit(main())
