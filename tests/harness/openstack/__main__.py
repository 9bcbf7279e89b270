"""`python -m tests.harness.openstack start|stop|status|install` (see stack.py)."""

import sys

from .stack import main

sys.exit(main())
