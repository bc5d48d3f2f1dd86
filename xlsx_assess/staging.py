"""Files written beside their final name and given it only when complete: the old file or the new one,
never a broken one, and nothing left behind, even by a `kill -9`.

A staged file is anonymous while it is written where the system allows it (Linux `O_TMPFILE`: a kill
leaves no name to clean up) and takes a name only for the instant between being linked and being
renamed over the final one. Every name this module gives is `.~xlsx-assess-<pid>-<random>.tmp` in the
output folder: hidden, recognisable, and owned by a process; the next write into the folder removes
those whose process is gone (`remove_stale`). Scratch folders for XlsxWriter's own temporary files
(`Staged.scratch`) are named the same way and watched by a janitor process that removes them the
moment this process ends, however it ends.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

PREFIX = ".~xlsx-assess-"
SUFFIX = ".tmp"

def temp_name(folder: Path) -> Path:
    """A new name for a temporary file or folder of this process in `folder`."""
    return folder / f"{PREFIX}{os.getpid()}-{secrets.token_hex(6)}{SUFFIX}"


def owner(name: str) -> int | None:
    """The process id a temporary name of ours carries, or None if it is not one of ours."""
    if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
        return None
    pid = name[len(PREFIX):-len(SUFFIX)].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def remove_stale(folder: Path) -> None:
    """Remove the temporaries a killed run of ours left in `folder` (their process is gone)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        pid = owner(name)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        remove(folder / name)


def remove(path: Path) -> None:
    """Remove a temporary file of ours, or a scratch folder with the files in it (it holds no folder)."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            for name in os.listdir(path):
                os.unlink(os.path.join(path, name))
            os.rmdir(path)
        else:
            os.unlink(path)
    except OSError:
        pass


def _alive(pid: int) -> bool:
    if os.name == "nt":                       # os.kill(pid, 0) would end it on Windows
        return _alive_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:                           # e.g. another user's process: alive
        return True
    return True


def _alive_windows(pid: int) -> bool:
    import ctypes

    handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)    # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    ctypes.windll.kernel32.CloseHandle(handle)
    return True


@functools.cache
def file_mode() -> int:
    """What a new file's permissions would be (0o666 less the umask), read once: reading the umask means
    setting it for a moment, which another thread must not see."""
    mask = os.umask(0o22)
    os.umask(mask)
    return 0o666 & ~mask


class Staged:
    """A file being written in `folder`: write to `file`; then `move_into_place(path)` or `discard()`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._name: Path | None = None         # None while anonymous
        self._scratch: Path | None = None
        self._janitor: subprocess.Popen | None = None
        self.file = self._open_anonymous() or self._open_named()

    def _open_anonymous(self) -> BinaryIO | None:
        flag = getattr(os, "O_TMPFILE", 0)
        if not flag or not os.path.isdir("/proc/self/fd"):
            return None
        try:
            return os.fdopen(os.open(self.folder, flag | os.O_RDWR, 0o600), "w+b")
        except OSError:                        # a file system without unnamed files
            return None

    def _open_named(self) -> BinaryIO:
        self._name = temp_name(self.folder)
        return os.fdopen(os.open(self._name, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600),
                         "w+b")

    def scratch(self) -> Path:
        """A folder of ours beside the file, for a writer's own temporary files; removed with the file
        or, if this process is killed, by the janitor watching it."""
        if self._scratch is None:
            path = temp_name(self.folder)
            path.mkdir()
            self._scratch = path
            self._janitor = _start_janitor([path])
        return self._scratch

    def move_into_place(self, path: Path) -> None:
        """Give the finished file the name `path` (replacing what had it), on disk first."""
        try:
            self.file.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(self.file.fileno(), file_mode())
            os.fsync(self.file.fileno())   # on disk before it takes the name: a power cut leaves old or new
            if self._name is None:
                self._link()
            self.file.close()
            if not hasattr(os, "fchmod"):
                os.chmod(self._name, file_mode())
            os.replace(self._name, path)
            self._name = None
        finally:
            self.discard()

    def _link(self) -> None:
        """Give the anonymous file a temporary name (a copy of it, where it cannot be linked)."""
        self._name = temp_name(self.folder)
        try:
            os.link(f"/proc/self/fd/{self.file.fileno()}", self._name, follow_symlinks=True)
        except OSError:
            with open(self._name, "xb") as named:
                self.file.seek(0)
                shutil.copyfileobj(self.file, named)
                named.flush()
                os.fsync(named.fileno())
            os.chmod(self._name, file_mode())

    def discard(self) -> None:
        """Let go of the file (removed unless it took its name) and of the scratch folder."""
        self.file.close()
        if self._name is not None:
            self._name.unlink(missing_ok=True)
            self._name = None
        if self._scratch is not None:
            remove(self._scratch)
            self._scratch = None
        if self._janitor is not None:
            _stop_janitor(self._janitor)
            self._janitor = None


_swept: set[tuple[int, str]] = set()         # (pid, folder) already cleared of what killed runs left


def stage(folder: Path) -> Staged:
    """A new staged file in `folder` (created if need be); the first in a folder removes what killed runs
    left there (once per folder and process: `generate` stages a file per township)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = (os.getpid(), os.path.abspath(folder))
    if key not in _swept:
        remove_stale(folder)
        _swept.add(key)
    return Staged(folder)


def _start_janitor(paths: list[Path]) -> subprocess.Popen | None:
    try:
        return subprocess.Popen([sys.executable, "-I", "-S", __file__, *map(str, paths)],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)     # a kill of our process group spares it
    except OSError:                            # no processes here: the next write removes what is left
        return None


def _stop_janitor(janitor: subprocess.Popen) -> None:
    try:
        janitor.stdin.close()
        janitor.wait(10)
    except (OSError, subprocess.TimeoutExpired):
        janitor.kill()


def _janitor(paths: list[str]) -> None:
    """The janitor's work: wait for stdin to close (the process that started it ended, or let it go), then
    remove what it was given if it is still there. It runs this file as a script, with nothing of the
    package imported, so it starts in milliseconds."""
    try:
        while sys.stdin.buffer.read(65536):
            pass
    except BaseException:
        pass
    for path in paths:
        remove(Path(path))


if __name__ == "__main__":
    _janitor(sys.argv[1:])
