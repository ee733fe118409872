"""The landing folder: where it is, and which listed files really lie inside it.

dlt's filesystem source globs with Python's `glob` on local folders, which follows
symbolic links (to files and, with `**`, into linked folders). A file is read only
when its real path lies inside the landing folder's real path; anything else is
skipped and recorded, never opened.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any

DEFAULT_BUCKET_URL = ".elt/landing"


def is_local(bucket_url: str) -> bool:
    return "://" not in bucket_url or bucket_url.startswith("file://")


def local_path(bucket_url: str) -> Path:
    return Path(bucket_url.removeprefix("file://"))


def resolve_bucket_url(bucket_url: str, project_dir: str | Path) -> str:
    """A relative local landing folder is relative to the project, not the working dir."""
    if not is_local(bucket_url):
        return bucket_url
    path = local_path(bucket_url).expanduser()
    if not path.is_absolute():
        path = Path(project_dir) / path
    return str(path)


def outside_reason(file_item: Any, bucket_url: str) -> str | None:
    """Why a listed file must not be read (it resolves outside the landing folder), or None."""
    relative = str(file_item["relative_path"])
    if posixpath.normpath(relative.replace("\\", "/")).startswith(("../", "/")) or relative == "..":
        return "outside the landing folder"
    if not is_local(bucket_url):
        return None
    root = os.path.realpath(local_path(bucket_url))
    real = os.path.realpath(os.path.join(local_path(bucket_url), relative))
    if os.path.commonpath([root, real]) != root:
        return "a link to a file outside the landing folder: not followed"
    return None
