"""Streamlit dashboard comparing SGG and AdamW runs (reads the run format only)."""

# object-store listing plugs itself into the loader (`--runs s3://...`)
from dashboard import store_runs  # noqa: F401
