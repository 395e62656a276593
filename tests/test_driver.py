"""The Session protocol and the one driver (model_core.runtime.driver): every session type
implements the protocol; run() is what generate uses, in any block size, from an array or
from blocks as they come, with progress and cancellation."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from model_core.runtime.driver import Cancelled, Session, run
from model_core.runtime.session import ResampledSession, StreamingSession


def test_sessions_implement_the_protocol(toy_model):
    s = toy_model.stream(seed=0)
    assert isinstance(s, StreamingSession) and isinstance(s, Session)
    assert s.fps == toy_model.fps and s.channel_names == toy_model.channel_names
    r = toy_model.stream(seed=0, fps=24)
    assert isinstance(r, ResampledSession) and isinstance(r, Session)
    assert r.fps == 24.0 and r.channel_names == toy_model.channel_names
    assert r.latency_ms == s.latency_ms and r.chunk_frames == s.chunk_frames
    with pytest.raises(ValueError, match="fps"):
        toy_model.stream(fps=0.5)


@pytest.mark.slow   # the clip five times
def test_run_is_generate_in_any_block_size_and_from_blocks(toy_model, speech):
    whole = toy_model.generate(speech, 16000, seed=2, fps=25)
    for block in (1234, 16000, len(speech)):
        assert np.array_equal(run(toy_model.stream(seed=2, fps=25), speech, block), whole)
    pieces = np.array_split(speech, 17)
    got = []
    assert run(toy_model.stream(seed=2, fps=25), iter(pieces), on_frames=got.append) is None
    assert np.array_equal(np.concatenate(got), whole)
    assert all(len(g) for g in got)          # on_frames never sees an empty array


def test_run_reports_progress_and_stops_when_cancelled(toy_model, speech):
    seen = []
    run(toy_model.stream(seed=0), speech, 8000, on_progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == -(-len(speech) // 8000)
    stop = threading.Event()
    n = []

    def on_frames(f):
        n.append(len(f))
        stop.set()

    session = toy_model.stream(seed=0)
    with pytest.raises(Cancelled):
        run(session, speech, 8000, on_frames=on_frames, cancel=stop)
    assert len(n) == 1 and not session.closed     # not flushed
    with pytest.raises(Cancelled):
        run(toy_model.stream(seed=0), speech, cancel=lambda: True)
    with pytest.raises(ValueError, match="block"):
        run(toy_model.stream(seed=0), speech, 0)


def test_run_without_flush_leaves_the_session_open(toy_model, speech):
    session = toy_model.stream(seed=0)
    out = run(session, speech[:16000], flush=False)
    assert not session.closed and len(out) <= toy_model.fps
    rest = session.flush()
    whole = toy_model.generate(speech[:16000], 16000, seed=0)
    assert np.array_equal(np.concatenate([out, rest]), whole)
