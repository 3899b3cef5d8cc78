"""Crash-safe recording of SGG / AdamW training runs (see docs/recorder.md, docs/run-format.md)."""

from recorder.options import RecorderOptions
from recorder.recorder import Recorder
from recorder.writer import RecorderError, RunExistsError
from runformat.schema import FORMAT_VERSION

__all__ = ["FORMAT_VERSION", "Recorder", "RecorderError", "RecorderOptions", "RunExistsError"]
