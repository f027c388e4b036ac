"""The rich-description sanitiser keeps a small allow-list and removes everything that could run."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.commerce.catalog.sanitize import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, sanitize_html, url_is_safe


def test_allowed_markup_survives():
    html = '<h2>详情</h2><p>纯棉 <strong>加厚</strong><br><em>秋冬</em></p><ul><li>M</li></ul>'
    assert sanitize_html(html) == html


def test_script_and_style_are_removed_with_their_content():
    out = sanitize_html('<p>前</p><script>alert("x")</script><style>p{color:red}</style><p>后</p>')
    assert out == "<p>前</p><p>后</p>"
    assert "alert" not in out and "color" not in out


def test_event_handlers_and_unknown_attributes_are_removed():
    out = sanitize_html('<p onclick="steal()" style="x" class="c">文</p><img src="/a.png" onerror="steal()" alt="图">')
    assert out == '<p>文</p><img src="/a.png" alt="图">'


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)",
                                 "java\tscript:alert(1)", "java&#x09;script:alert(1)", "data:text/html;base64,xx",
                                 "vbscript:msgbox", "//evil.example/x", "/\\evil.example"])
def test_dangerous_urls_are_dropped(url):
    out = sanitize_html(f'<a href="{url}">链接</a><img src="{url}">')
    assert out == '<a rel="nofollow noopener">链接</a>'
    assert "script" not in out.lower() and "data:" not in out


def test_safe_links_kept_and_marked_nofollow():
    assert sanitize_html('<a href="https://brand.example/x?a=1&b=2" target="_blank">看</a>') == \
        '<a href="https://brand.example/x?a=1&amp;b=2" rel="nofollow noopener">看</a>'
    assert url_is_safe("/shop/p/1") and url_is_safe("#top") and not url_is_safe("")


def test_unknown_tags_keep_text_and_nesting_is_repaired():
    assert sanitize_html("<section><p>一<b>二</p>三") == "<p>一<b>二</b></p>三"
    assert sanitize_html("<iframe src='https://x'>内</iframe><svg><script>1</script></svg>尾") == "尾"
    assert sanitize_html("a < b & c") == "a &lt; b &amp; c"
    assert sanitize_html("<!-- 注释 --><p>x</p>") == "<p>x</p>"


class _Audit(HTMLParser):
    """Collects every tag and attribute of sanitised output, to check them against the allow-list."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))


@settings(max_examples=200)
@given(st.lists(st.sampled_from([*"<>/=\"' abcdefghijklmnopqrstuvwxyz:;&#()-",
    "<script>", "</script>", "<a href=", "javascript:", "onload=", "onerror=", "<img src=", "<p>", "</p>",
    "<style>", "<svg>", "<iframe>", "&#x09;", "<b>", "</b>"]), max_size=40).map("".join))
def test_output_never_contains_active_content(text):
    out = sanitize_html(text)
    audit = _Audit()
    audit.feed(out)
    audit.close()
    for tag, attrs in audit.tags:
        assert tag in ALLOWED_TAGS
        for name, value in attrs:
            assert not name.startswith("on")
            assert name in ALLOWED_ATTRIBUTES.get(tag, ()) or (tag, name) == ("a", "rel")
            if name in {"href", "src"}:
                assert url_is_safe(value)
    assert sanitize_html(out) == out  # stable: sanitising twice changes nothing
