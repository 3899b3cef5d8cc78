import os
import sys
from pathlib import Path

# Import the packages from this checkout even when the editable install is stale.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Every room's tests use SGG's eager update (compile warm-up stays out of test time); one test in
# tests/sgg checks compiled == eager explicitly.
os.environ.setdefault("SGG_UPDATE_IMPL", "eager")
