"""Files that hold secrets: private from the first byte, replaced atomically, and, in the folders
iotnotify owns (the key cache, the local stack's TLS material), trusted only when no one else could
have written them.

A cache folder may sit on a shared disk (`XDG_CACHE_HOME=/shared/...`): another user who can plant a
file there could send the client to their own broker with their own keys. So, as ssh does with
`~/.ssh` (StrictModes), a private folder and the files in it must be owned by the user and not
writable by group or others, and are opened without following a symbolic link at the last step
(`O_NOFOLLOW`, then `fstat` of what was opened: no window between the check and the use).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

MAX_PRIVATE_FILE = 1 << 20  # bytes; a cached key file is about 2 KB
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Unsafe(OSError):
    """A private folder or file someone else could have written (or a link to one): not used."""


def _check(st: os.stat_result, what: str, path: Path, uid: int | None) -> None:
    """Unsafe unless `st` is owned by `uid` (default: this process's user) and writable by it alone."""
    owner = os.geteuid() if uid is None else uid
    if st.st_uid != owner:
        raise Unsafe(f"{what} {path} is not owned by you")
    if st.st_mode & 0o022:
        raise Unsafe(f"{what} {path} is writable by others (mode {stat.S_IMODE(st.st_mode):o})")


def open_private_folder(folder: Path, create: bool = False, uid: int | None = None) -> int:
    """A file descriptor of `folder` (made with mode 0700 if `create`), or Unsafe if it is a link or
    not the user's alone. OSError (FileNotFoundError...) as os.open raises it."""
    if create:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
    try:
        fd = os.open(folder, _DIR_FLAGS)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR) and folder.is_symlink():
            raise Unsafe(f"folder {folder} is a symbolic link") from None
        raise
    try:
        _check(os.fstat(fd), "folder", folder, uid)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_private_folder(folder: Path, create: bool = False, uid: int | None = None) -> None:
    """Unsafe unless `folder` (made if `create`) is the user's alone and not a link."""
    os.close(open_private_folder(folder, create, uid))


def read_private(path: Path, uid: int | None = None) -> bytes:
    """The bytes of `path` if it and its folder are the user's alone; Unsafe (a link, another owner,
    writable by others, not a regular file, too large) or OSError (missing, unreadable) otherwise."""
    folder = open_private_folder(path.parent, uid=uid)
    try:
        try:
            fd = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=folder)
        except OSError as e:
            if e.errno == errno.ELOOP:  # a symbolic link where the file should be
                raise Unsafe(f"file {path} is a symbolic link") from None
            raise
    finally:
        os.close(folder)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise Unsafe(f"file {path} is not a regular file")
        _check(st, "file", path, uid)
        data = f.read(MAX_PRIVATE_FILE + 1)
    if len(data) > MAX_PRIVATE_FILE:
        raise Unsafe(f"file {path} is larger than {MAX_PRIVATE_FILE} bytes")
    return data


def write_private(path: Path, data: bytes, strict: bool = False) -> None:
    """Write `data` to `path` with mode 0600, atomically (a reader sees the old or the new file).
    With `strict` (folders iotnotify owns), the folder is made 0700 and must be the user's alone
    (else Unsafe); without it (a path the user named, such as `--failed /tmp/x`), any folder will do."""
    if strict:
        folder = open_private_folder(path.parent, create=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    tmp = f".{path.name}.{os.getpid()}.tmp"
    try:
        try:
            os.unlink(tmp, dir_fd=folder)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=folder)
            except OSError:
                pass
            raise
    finally:
        os.close(folder)



def save_lines(path: str, lines: dict[int, bytes], template: str = "; saved to {}") -> str:
    """Write `lines` (by input position: in order, one a line) to the file the user named (--failed),
    and say so with `template`; or say why they could not be (the caller's error carries it: those
    messages are then lost, and the user must know)."""
    try:
        write_private(Path(path), b"".join(lines[k] + b"\n" for k in sorted(lines)))
    except OSError as e:
        return f"; NOT saved to {path}: {e.strerror or e}"
    return template.format(path)
