import sys
from pathlib import Path

# Import the packages from this checkout even when the editable install is stale.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
