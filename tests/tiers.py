"""The two test tiers (pyproject.toml's ``slow`` marker): ``pytest -m "not slow"`` for
working, everything in CI (tools/test.sh). For a sweep over many cases, the first case stays
in the fast tier and the rest are slow (:func:`first_fast`)."""

from __future__ import annotations

import pytest


def first_fast(values, ids=None) -> list:
    """``values`` as ``pytest.param``s for ``@pytest.mark.parametrize``: the first in the fast
    tier, every other one marked ``slow``. ``ids``: a function of a value, or None (pytest's
    own ids). Tuples are unpacked, as parametrize does for several argument names."""
    out = []
    for i, v in enumerate(values):
        args = v if isinstance(v, tuple) else (v,)
        out.append(pytest.param(*args, marks=() if i == 0 else pytest.mark.slow,
                                id=None if ids is None else ids(v)))
    return out
