"""The wheel cache the extension zips are built from (build_addon.py), for the tests that
build a zip: filled from the package index when it is empty (tools/test.sh's set-up fills it
first), skipped with the reason only when it is empty *and* the index is unreachable."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def build_addon():
    """The project's build_addon module (at the project root, not a package)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import build_addon as mod
    return mod


def index_reachable(host: str = "pypi.org", timeout: float = 5.0) -> bool:
    """Whether the package index answers on HTTPS (one TCP connection, nothing sent)."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def wheels_or_skip(platform: str = "linux-x64") -> list[Path]:
    """The cached wheels of ``platform`` (both Pythons), downloading what is missing; skips
    the test when the cache lacks them and the index cannot be reached."""
    ba = build_addon()
    try:
        return ba.fetch_wheels([platform], offline=True, log=lambda *a: None)[platform]
    except ba.BuildError as offline_error:
        if not index_reachable():
            pytest.skip(f"the wheel cache {ba.default_wheel_cache()} lacks the {platform} "
                        f"wheels and pypi.org is unreachable ({offline_error}); fill it with "
                        f"`python build_addon.py --download-only` where PyPI is reachable")
    return ba.fetch_wheels([platform])[platform]
