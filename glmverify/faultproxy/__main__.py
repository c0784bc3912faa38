"""``python -m glmverify.faultproxy``: see ``glmverify.faultproxy.cli``."""
import sys

from .cli import main

sys.exit(main())
