"""Settings for every room's tests.

`tests/` is a package (tests/__init__.py): pytest imports this conftest as `tests.conftest` and
puts the repository root on sys.path, so `tests.fixtures` imports everywhere without sys.path
edits; the packages themselves come from the editable install.
"""

import os

# Every room's tests use SGG's eager update (compile warm-up stays out of test time); one test in
# tests/sgg checks compiled == eager explicitly.
os.environ.setdefault("SGG_UPDATE_IMPL", "eager")
