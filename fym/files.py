"""Writing files so that nothing is lost: never over an existing file, never a partial one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable


def write_new(path: str, write: Callable[[str], None], what: str) -> None:
    """Call write(temporary_path), then give the finished file its name `path` (temp file in the same folder +
    hard link, so a crash leaves no partial file). Raises FileExistsError if `path` exists, also if it
    appears meanwhile; `what` names the file kind in that error."""
    exists = FileExistsError(f"{path} exists; {what} are never overwritten")
    if os.path.exists(path):
        raise exists
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".part", dir=folder)
    os.close(handle)
    try:
        write(temporary)
        try:
            os.link(temporary, path)  # unlike a rename, fails if path appeared meanwhile
        except FileExistsError:
            raise exists from None
        except OSError:  # a file system without hard links
            if os.path.exists(path):
                raise exists from None
            os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
