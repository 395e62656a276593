"""The Windows and macOS zips cannot be installed here, but Blender's own installer logic can
be run on them: for each platform zip and each Python Blender embeds (3.11: 4.2-5.0, 3.13:
5.1+), Blender's wheel filter (``bl_pkg.bl_extension_ops._extensions_wheel_filter_for_this_system``,
the function that decides at install time which of an extension's wheels go into its
site-packages) picks exactly one wheel of every bundled project, all of that Python and
platform -- so nothing is missing and no two wheels of one project compete. Run in a fresh
interpreter with ``sysconfig.get_platform`` and ``sys.version_info`` set to the target's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from wheelcache import build_addon, wheels_or_skip

#: Blender platform -> what ``sysconfig.get_platform()`` says there.
SYSCONFIG = {"linux-x64": "linux-x86_64", "windows-x64": "win-amd64",
             "macos-arm64": "macosx-14.0-arm64", "macos-x64": "macosx-13.0-x86_64"}

FILTER = textwrap.dedent(r'''
    import json, sys, sysconfig, tomllib, zipfile
    import bpy
    sys.path.insert(0, bpy.utils.system_resource("SCRIPTS") + "/addons_core")
    from bl_pkg import bl_extension_ops as ops
    jobs = json.loads(sys.argv[1])
    out = {}
    real = sys.version_info
    for zip_path, sysplat in jobs:
        with zipfile.ZipFile(zip_path) as z:
            wheels = tomllib.loads(z.read("blender_manifest.toml").decode())["wheels"]
        sysconfig.get_platform = lambda sp=sysplat: sp
        for py in ((3, 11), (3, 13)):
            sys.version_info = tuple(py) + tuple(real[2:])
            try:
                out[f"{zip_path}|{py[0]}.{py[1]}"] = ops._extensions_wheel_filter_for_this_system(
                    wheels)
            finally:
                sys.version_info = real
    print("RESULT " + json.dumps(out))
''')


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    """All platform zips, built from the wheel cache (filled from PyPI where missing)."""
    for p in build_addon().PLATFORMS:
        wheels_or_skip(p)
    return build_addon().build_all(tmp_path_factory.mktemp("dist"), offline=True, log=print)


def test_blenders_installer_picks_one_wheel_per_project_for_each_platform_and_python(zips):
    ba = build_addon()
    jobs = [[str(z), SYSCONFIG[p]] for p, z in zips.items()]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    r = subprocess.run([sys.executable, "-c", FILTER, json.dumps(jobs)], capture_output=True,
                       text=True, env=env, timeout=300)
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    assert r.returncode == 0 and line, r.stdout[-3000:] + r.stderr[-3000:]
    chosen = json.loads(line[0][len("RESULT "):])
    assert len(chosen) == 2 * len(zips)
    pinned = {canonicalize_name(p): Version(v) for p, v in ba.BUNDLED_WHEELS}
    for platform, z in zips.items():
        for python in ("3.11", "3.13"):
            picked = [w.rsplit("/", 1)[-1] for w in chosen[f"{z}|{python}"]]
            projects = [ba.parse_wheel(w)[0] for w in picked]
            assert sorted(projects) == sorted(pinned), (platform, python, picked)
            for w in picked:
                name, version, _ = ba.parse_wheel(w)
                assert version == pinned[name]
                assert ba.wheel_fits_python(w, python), (platform, python, w)
                assert ba.wheel_platforms(w) & {"any", platform}, (platform, w)
