import os

# Tests use the eager update (compile warm-up stays out of test time); one test checks
# compiled == eager explicitly.
os.environ.setdefault("SGG_UPDATE_IMPL", "eager")
