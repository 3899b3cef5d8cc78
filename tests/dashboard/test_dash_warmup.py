"""The cold-start warm-up runs the Summary's real code on synthetic runs, once per process, in
the background: if a function it calls changes, this fails (in a page it would only fail
silently and the first page would pay the first-use costs again)."""

from __future__ import annotations

import threading

from dashboard import warmup


def test_the_warm_up_runs_the_summary_code_without_an_error():
    assert warmup.warm()


def test_it_starts_once_per_process_in_a_daemon_thread(monkeypatch):
    monkeypatch.setattr(warmup, "_STARTED", threading.Event())
    thread = warmup.start()
    assert thread is not None and thread.daemon
    assert warmup.start() is None
    thread.join(60)
    assert not thread.is_alive()
