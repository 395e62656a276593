"""The parts of ``build_addon.py`` (the extension zips' build, run as ``python build_addon.py``
from the project root), by job: :mod:`.common` (paths, :class:`~.common.BuildError`),
:mod:`.wheels` (the pinned wheels: tags, download, checks, the sha256 lock), :mod:`.blender`
(Blender's ``blender_ext.py``), :mod:`.zips` (staging a zip's contents, checking a built zip),
:mod:`.build` (one zip per platform). ``build_addon`` re-exports their public names."""
