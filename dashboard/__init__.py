"""Streamlit dashboard comparing SGG and AdamW runs (reads the run format only)."""
