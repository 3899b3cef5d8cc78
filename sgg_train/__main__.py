"""`python -m sgg_train ...` is `sgg-train ...`."""

import sys

from sgg_train.cli import main

sys.exit(main())
