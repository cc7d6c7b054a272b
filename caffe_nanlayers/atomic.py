"""Write files so that a crash never leaves a half-written one behind.

Reports, dumps, instrumented nets and saved weights are what a user debugs
with; a truncated file would be a silent wrong answer. Everything this
package writes goes to a temporary file in the target's directory first and
is renamed over the target in one step.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    For writers that want a file name (``np.savez``, ``net.save``) rather
    than a file object. ``suffix`` keeps an extension that a writer insists on.
    """
    target = Path(path)
    if target.is_dir():  # said before writing anything; renaming onto it fails late and variously (EBUSY)
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    try:
        # mkstemp makes the file private (0600); the result must have the mode open() would give it.
        os.fchmod(fd, _mode_for(target))
    finally:
        os.close(fd)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _mode_for(target: Path) -> int:
    """The mode of the file it replaces, else what open() would create: 0o666 less the umask."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        pass
    umask = os.umask(0o022)  # the only way to read it is to set it: put it back at once
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)
