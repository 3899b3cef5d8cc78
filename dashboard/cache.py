"""One cache for derived data: a pure function's result, kept per (function, fingerprint of inputs).

The views call `cached(metrics.f, key, *args)` instead of defining a cache wrapper per function;
`key` must change whenever the inputs do (the loader's table signatures are made for that).
Results are shared, not copied (a million-step table is not pickled at every rerun): callers
treat them as read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

T = TypeVar("T")


@st.cache_resource(max_entries=512, show_spinner=False)
def _cached_call(name: str, key: tuple, _fn: Callable, _args: tuple, _kwargs: dict):
    return _fn(*_args, **_kwargs)


def cached(fn: Callable[..., T], key: tuple, *args, **kwargs) -> T:
    """`fn(*args, **kwargs)`, computed once per (fn, key) across reruns and sessions."""
    return _cached_call(f"{fn.__module__}.{fn.__qualname__}", key, fn, args, kwargs)
