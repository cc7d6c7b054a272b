"""The one writer of every file the tools write: nets, plots, dumps, reports, weights.

Reports, dumps, instrumented nets and saved weights are what a user debugs
with; a truncated file would be a silent wrong answer, so a regular file is
written to a temporary file in the target's directory first and renamed
over the target in one step. What the user named may be something else,
and the rename must never replace it:

- a symbolic link is written through: its target is replaced, the link stays;
- a character device or a FIFO (``-o /dev/null``, ``-o /dev/stdout``, a
  named pipe) is written directly, as a shell redirection would: renaming
  over ``/dev/null`` as root would replace the system's device with a file;
- anything else that is not a regular file (a socket, a block device) is
  refused with an ``OSError`` naming it, which ``errors.writing`` words.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path


def write_target(path: str | os.PathLike) -> tuple[Path, bool]:
    """Where writing ``path`` really goes, and whether it takes a rename (a regular file, or nothing yet).

    Symbolic links are followed to the end, so that writing through one keeps it a link.
    """
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return target, True
    if stat.S_ISREG(mode):
        return target, True
    if stat.S_ISDIR(mode):  # said before writing anything; renaming onto it fails late and variously
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return target, False
    kind = "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "no file"
    raise OSError(errno.EINVAL, f"is {kind}, not a regular file, a device or a FIFO", str(path))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield the path to write; on success it has replaced ``path`` in one step.

    For writers that want a file name (``np.savez``, ``net.save``) rather
    than a file object. ``suffix`` keeps an extension that a writer insists
    on. For a device or a FIFO the path yielded is the target itself.
    """
    target, renamed = write_target(path)
    if not renamed:
        yield str(target)
        return
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
        if stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # fsync on a FIFO fails (EINVAL)
            os.fsync(f.fileno())
    return Path(path)
