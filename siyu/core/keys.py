"""Secrets that the embedded install generates once and keeps under the data directory."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path


def load_or_create_secret(path: Path, *, nbytes: int) -> str:
    """Return the urlsafe-base64 secret stored at ``path``, creating it (mode 0600) on first use.

    Safe when several processes start at once: the value is written whole to a private temporary file and
    hard-linked into place, which fails if another process got there first — then its value is read. A
    reader therefore never sees a half-written file, and every process ends up with the same secret.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path.read_text().strip()
    value = base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).decode()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_text().strip()
    finally:
        temporary.unlink(missing_ok=True)
    return value
