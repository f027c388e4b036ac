"""RESULTS.md sections that keep their history: each run adds a dated subsection (the older ones stay)."""

from __future__ import annotations

import re

from common import HEADER, RESULTS


def subsection_append(title: str, subtitle: str, body: str) -> None:
    """Append ``### subtitle`` + body at the end of the section ``## title`` (created when missing)."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    block = f"### {subtitle}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    found = pattern.search(text)
    if found is None:
        text = text.rstrip() + f"\n\n## {title}\n\n" + block
    else:
        section = found.group(0).rstrip() + "\n\n" + block + "\n"
        text = (text[:found.start()] + section + text[found.end():]).rstrip() + "\n"
    RESULTS.write_text(text)
