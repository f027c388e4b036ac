"""Rich product descriptions reduced to a small allow-list of HTML (pure, standard library only).

Everything not listed is dropped: unknown tags lose their markup but keep their text; ``script``,
``style`` and similar lose their content too; attributes other than the few listed per tag go, and so
does any ``on*`` handler; links and images keep only http(s) or site-relative URLs (no ``javascript:``,
``data:``, ``vbscript:`` …). Text is re-escaped, so the output can be rendered as-is.
"""

from __future__ import annotations

import re
from html import escape
from html.parser import HTMLParser

ALLOWED_TAGS = frozenset({"p", "br", "strong", "b", "em", "i", "u", "s", "ul", "ol", "li", "h2", "h3", "h4",
                          "blockquote", "a", "img", "span", "div", "table", "thead", "tbody", "tr", "th", "td",
                          "hr"})
VOID_TAGS = frozenset({"br", "img", "hr"})
ALLOWED_ATTRIBUTES = {"a": frozenset({"href", "title"}), "img": frozenset({"src", "alt", "width", "height"}),
                      "td": frozenset({"colspan", "rowspan"}), "th": frozenset({"colspan", "rowspan"})}
URL_ATTRIBUTES = frozenset({"href", "src"})
# Content of these is never text a shopper should see.
DROP_CONTENT = frozenset({"script", "style", "iframe", "object", "embed", "template", "noscript", "textarea",
                          "select", "svg", "math", "title", "head"})
MAX_LENGTH = 200_000

_CONTROL = re.compile(r"[\x00-\x20\x7f]+")


def url_is_safe(url: str) -> bool:
    """http(s) and site-relative URLs only. Browsers ignore tabs/newlines inside a scheme, so strip them first."""
    compact = _CONTROL.sub("", url or "").lower()
    if not compact:
        return False
    if compact.startswith(("https://", "http://")):
        return True
    # Relative: "/path" (not "//host", which is another site) or "#anchor"; no scheme at all.
    if compact.startswith("//") or compact.startswith("/\\"):
        return False
    return bool(compact.startswith(("/", "#")))


class _Sanitiser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []
        self.dropping = 0

    def handle_starttag(self, tag, attrs):
        if tag in DROP_CONTENT:
            self.dropping += 1
            return
        if self.dropping or tag not in ALLOWED_TAGS:
            return
        kept = []
        allowed = ALLOWED_ATTRIBUTES.get(tag, frozenset())
        for name, value in attrs:
            if name not in allowed or value is None:
                continue
            if name in URL_ATTRIBUTES and not url_is_safe(value):
                continue
            if name in {"width", "height", "colspan", "rowspan"} and not value.isdigit():
                continue
            kept.append(f' {name}="{escape(value, quote=True)}"')
        if tag == "img" and not any(item.startswith(" src=") for item in kept):
            return
        if tag == "a":
            kept.append(' rel="nofollow noopener"')
        self.out.append(f"<{tag}{''.join(kept)}>")
        if tag not in VOID_TAGS:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag in DROP_CONTENT:
            self.dropping = max(0, self.dropping - 1)

    def handle_endtag(self, tag):
        if tag in DROP_CONTENT:
            self.dropping = max(0, self.dropping - 1)
            return
        if self.dropping or tag not in self.open:
            return
        # Close what was left open inside it, so the output is always well nested.
        while self.open:
            inner = self.open.pop()
            self.out.append(f"</{inner}>")
            if inner == tag:
                break

    def handle_data(self, data):
        if not self.dropping:
            self.out.append(escape(data, quote=False))

    def result(self) -> str:
        self.close()
        while self.open:
            self.out.append(f"</{self.open.pop()}>")
        return "".join(self.out)


def sanitize_html(html: str) -> str:
    """The allow-listed subset of ``html`` (comments, doctype and processing instructions are dropped)."""
    parser = _Sanitiser()
    parser.feed((html or "")[:MAX_LENGTH])
    return parser.result()
