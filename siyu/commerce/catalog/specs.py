"""SKU specs (pure, no ORM): validation, the canonical key that makes a spec combination unique, and the
matrix of combinations generated from spec options ("颜色: 红, 蓝" × "尺码: S, M")."""

from __future__ import annotations

import itertools
import json

from siyu.core.errors import SiyuError

MAX_SPEC_NAMES = 4
MAX_VALUES_PER_SPEC = 30
MAX_COMBINATIONS = 200


def specs_validate(specs) -> dict[str, str]:
    """A spec dict {name: value} of non-empty short strings, or a SiyuError."""
    if not isinstance(specs, dict):
        raise SiyuError("invalid_specs", "规格格式错误", "Specs must be an object of name → value")
    if len(specs) > MAX_SPEC_NAMES:
        raise SiyuError("invalid_specs", f"规格最多 {MAX_SPEC_NAMES} 项", f"At most {MAX_SPEC_NAMES} spec names")
    clean: dict[str, str] = {}
    for name, value in specs.items():
        if not isinstance(name, str) or not isinstance(value, str) or not name.strip() or not value.strip() \
                or len(name) > 20 or len(value) > 40:
            raise SiyuError("invalid_specs", "规格名和规格值必须是非空文字（名 ≤20 字，值 ≤40 字）",
                            "Spec names and values must be non-empty text (≤20 / ≤40 characters)")
        clean[name.strip()] = value.strip()
    return clean


def specs_canonical(specs: dict[str, str]) -> str:
    """The same combination always gives the same key, whatever the key order."""
    return json.dumps(specs, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def spec_options_parse(text: str) -> list[tuple[str, list[str]]]:
    """Parse one spec per line, "名称: 值1, 值2" (full-width ：，、 accepted) into ordered options."""
    options: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        name, sep, values_text = line.replace("：", ":").partition(":")
        values = [v.strip() for v in values_text.replace("，", ",").replace("、", ",").split(",") if v.strip()]
        name = name.strip()
        if not sep or not name or not values:
            raise SiyuError("invalid_spec_options", f"第 {number} 行应写成「名称: 值1, 值2」",
                            f"Line {number} must read 'name: value1, value2'")
        if name in seen or len(set(values)) != len(values):
            raise SiyuError("duplicate_specs", f"第 {number} 行有重复的规格名或规格值",
                            f"Line {number} repeats a spec name or value")
        if len(values) > MAX_VALUES_PER_SPEC:
            raise SiyuError("invalid_spec_options", "规格值过多", "Too many values for one spec")
        seen.add(name)
        options.append((name, values))
    if len(options) > MAX_SPEC_NAMES:
        raise SiyuError("invalid_specs", f"规格最多 {MAX_SPEC_NAMES} 项", f"At most {MAX_SPEC_NAMES} spec names")
    return options


def spec_matrix(options: list[tuple[str, list[str]]]) -> list[dict[str, str]]:
    """Every combination of the options, in the order the operator wrote them; [{}] when there are none."""
    if not options:
        return [{}]
    names = [name for name, _values in options]
    combos = list(itertools.islice(itertools.product(*(values for _name, values in options)), MAX_COMBINATIONS + 1))
    if len(combos) > MAX_COMBINATIONS:
        raise SiyuError("too_many_skus", f"规格组合超过 {MAX_COMBINATIONS} 个", f"More than {MAX_COMBINATIONS} SKUs")
    return [specs_validate(dict(zip(names, combo, strict=True))) for combo in combos]
