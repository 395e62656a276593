"""MDD / PC2 point caches: exact byte layouts that Blender's Mesh Cache modifier reads."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from model_core.io.pointcache import read_mdd, read_pc2, write_mdd, write_pc2, write_point_cache


@pytest.fixture
def verts():
    return np.random.default_rng(0).normal(size=(5, 7, 3)).astype(np.float32)


def test_pc2_layout(tmp_path, verts):
    p = write_pc2(tmp_path / "a.pc2", verts, start_frame=1.0, sample_rate=1.0)
    b = p.read_bytes()
    assert b[:12] == b"POINTCACHE2\0"
    assert struct.unpack("<iiffi", b[12:32]) == (1, 7, 1.0, 1.0, 5)
    assert len(b) == 32 + 5 * 7 * 12
    assert np.array_equal(np.frombuffer(b[32:], "<f4").reshape(5, 7, 3), verts)
    v, start, rate = read_pc2(p)
    assert np.array_equal(v, verts) and (start, rate) == (1.0, 1.0)


def test_mdd_layout(tmp_path, verts):
    p = write_mdd(tmp_path / "a.mdd", verts, fps=25)
    b = p.read_bytes()
    assert struct.unpack(">ii", b[:8]) == (5, 7)
    times = np.frombuffer(b[8:28], ">f4")
    assert np.allclose(times, np.arange(5) / 25)
    assert np.array_equal(np.frombuffer(b[28:], ">f4").reshape(5, 7, 3), verts)
    v, t = read_mdd(p)
    assert np.array_equal(v, verts) and np.allclose(t, times)


def test_no_overwrite_and_errors(tmp_path, verts):
    write_point_cache(tmp_path / "x.mdd", verts, 30)
    with pytest.raises(FileExistsError):
        write_point_cache(tmp_path / "x.mdd", verts, 30)
    write_point_cache(tmp_path / "x.mdd", verts[:2], 30, overwrite=True)
    assert read_mdd(tmp_path / "x.mdd")[0].shape == (2, 7, 3)
    with pytest.raises(ValueError):
        write_point_cache(tmp_path / "x.abc", verts, 30)
    with pytest.raises(ValueError):
        write_pc2(tmp_path / "y.pc2", verts[0])
    with pytest.raises(ValueError):
        write_mdd(tmp_path / "y.mdd", verts, fps=0)
    (tmp_path / "bad.pc2").write_bytes(b"POINTCACHE2\0" + b"\0" * 4)
    with pytest.raises(ValueError):
        read_pc2(tmp_path / "bad.pc2")


def test_export_cache_cli(tmp_path, verts):
    import argparse
    from model_core.cli.vertex import add_vertex_parsers
    np.save(tmp_path / "v.npy", verts)
    ap = argparse.ArgumentParser()
    add_vertex_parsers(ap.add_subparsers(dest="command"))
    for name in ("o.pc2", "o.mdd"):
        args = ap.parse_args(["export-cache", str(tmp_path / "v.npy"), "-o", str(tmp_path / name),
                              "--fps", "30"])
        assert args.func(args) == 0
    assert np.array_equal(read_pc2(tmp_path / "o.pc2")[0], verts)
    assert np.array_equal(read_mdd(tmp_path / "o.mdd")[0], verts)
