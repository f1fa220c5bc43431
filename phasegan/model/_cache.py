"""Where numba keeps the compiled kernels, so that no task compiles them.

The kernels are ``@njit(cache=True)``: the first process to call one
compiles it and writes the machine code to disk, and every later process (a
fresh Dask worker) loads it, which takes a fraction of a second instead of
seconds. Numba writes next to the source (``phasegan/model/__pycache__``),
or else under the user's cache directory (``~/.cache/numba``); when neither
can be written (a read-only installation run by a user without a writable
home, as in some containers and shared cluster installs) it refuses, and
``cache=True`` fails at import. `choose_cache_dir` then points numba at a
directory under the system's temporary directory instead, one per user.
``NUMBA_CACHE_DIR``, when set, always wins.

This runs when `phasegan.model` is imported, before any kernel module, and
touches only the file system: numba itself is imported later, by the
kernels.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

#: The kernels' own cache, numba's first choice.
SOURCE_CACHE = Path(__file__).parent / "__pycache__"


def choose_cache_dir(
    source_cache: Path = SOURCE_CACHE,
    user_cache: Path | None = None,
    environ=os.environ,
) -> str | None:
    """Set ``NUMBA_CACHE_DIR`` in ``environ`` if numba would find no cache.

    Parameters
    ----------
    source_cache, user_cache : Path
        Numba's two default places, in its order; ``user_cache`` defaults to
        numba's user-wide one.
    environ : mapping
        The environment to read and set (``os.environ``; the tests pass a
        dict).

    Returns
    -------
    str or None
        The directory set, or None when numba's own choice stands.
    """
    if environ.get("NUMBA_CACHE_DIR"):
        return None
    if user_cache is None:
        user_cache = _numba_user_cache(environ)
    if _writable(source_cache) or _writable(user_cache):
        return None

    uid = os.getuid() if hasattr(os, "getuid") else "user"
    fallback = Path(tempfile.gettempdir()) / f"phasegan-numba-cache-{uid}"
    if not _writable(fallback):
        log.warning(
            "numba cannot cache the compiled kernels (%s, %s and %s are not "
            "writable): every worker compiles them again; set NUMBA_CACHE_DIR "
            "to a writable directory",
            source_cache,
            user_cache,
            fallback,
        )
        return None
    environ["NUMBA_CACHE_DIR"] = str(fallback)
    log.info(
        "numba's cache: %s (%s and %s are not writable)",
        fallback,
        source_cache,
        user_cache,
    )
    return str(fallback)


def apply() -> None:
    """`choose_cache_dir` for this process; also tells numba if already loaded."""
    chosen = choose_cache_dir()
    config = sys.modules.get("numba.core.config")
    if chosen and config is not None:
        config.CACHE_DIR = chosen


def _numba_user_cache(environ) -> Path:
    # What numba's UserWideCacheLocator uses on Linux (XDG), macOS and Windows.
    if sys.platform == "darwin":
        return Path("~/Library/Caches/numba").expanduser()
    if os.name == "nt":
        return Path(environ.get("LOCALAPPDATA", "~")).expanduser() / "numba"
    base = environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "numba"


def _writable(path: Path) -> bool:
    """Can a file be created in ``path`` (made if missing)? As numba checks."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True
