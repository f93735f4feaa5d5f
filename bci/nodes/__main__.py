"""``python -m bci.nodes NAME SESSION_JSON``: run one node (the supervisor does this)."""

import sys

from bci.nodes.runner import main

sys.exit(main())
