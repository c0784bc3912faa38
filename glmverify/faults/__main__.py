"""``python -m glmverify.faults``: see ``glmverify.faults.cli``."""
import sys

from .cli import main

sys.exit(main())
