"""``python -m glmverify.parsers ENGINE VERSION [--out FILE]``: see envs.main."""

import sys

from glmverify.parsers.envs import main

sys.exit(main())
