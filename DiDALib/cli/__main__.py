"""``python -m DiDALib.cli``: the ``dida`` command."""

import sys

from . import main

sys.exit(main())
