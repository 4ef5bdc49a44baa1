"""Typed, range-checked options: one checker for suite keys, CLI flags and keyword options.

An `Option` says what a value may be (type, range, choices, a registered name, a list's items
and length); `check` returns the value (ints widened to float where a number is expected) or
raises one `WsolbenchError` that names the key, flag or `--set` expression and says what is
allowed. Registered factories (methods, post-processors, explainers) declare their options by
their keyword defaults, refined by an ``OPTIONS`` table of `Option`s on the factory
(`factory_options`), so their keys are checked the same way. Text from the command line
(`KEY=VALUE`, a flag's value) is parsed here too.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsolbench.errors import WsolbenchError

_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a table",
}


@dataclass(frozen=True)
class Option:
    kind: type  # bool, int, float, str, list or dict
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself excluded
    high_open: bool = False
    choices: tuple | None = None
    item: type | Option | None = None  # a list's items: a type (with low/high) or an Option
    nullable: bool = False  # None allowed (TOML has no null: only from Python or a default)
    min_items: int = 0
    max_items: int | None = None
    registry: str | None = None  # a str that names a registered entry of this kind
    pattern: str | None = None  # a str that fully matches this regex...
    words: str | None = None  # ...described in these words

    def describe(self) -> str:
        if self.words is not None:
            text = self.words
        elif self.registry is not None:
            from wsolbench.registry import registry_of

            names = registry_of(self.registry).names()
            text = f"a registered {self.registry} ({', '.join(names)})"
        elif self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind is list:
            count = ""
            if self.max_items is not None and self.max_items == self.min_items:
                count = f"{self.min_items} "
            elif self.min_items:
                count = "non-empty "
            text = f"a list of {count}items, each {self.item_option().describe()}"
        else:
            text = _NAMES[self.kind] + self._range()
        return text + (" (or none)" if self.nullable else "")

    def item_option(self) -> Option:
        if isinstance(self.item, Option):
            return self.item
        return Option(self.item or float, self.low, self.high, self.low_open, self.high_open)

    def _range(self) -> str:
        if self.low is not None and self.high is not None:
            return f" in {'(' if self.low_open else '['}{_fmt(self.low)}, {_fmt(self.high)}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f" {'>' if self.low_open else '>='} {_fmt(self.low)}"
        if self.high is not None:
            return f" {'<' if self.high_open else '<='} {_fmt(self.high)}"
        return ""


def _fmt(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def check(value: Any, option: Option, name: str, source: str | Path | None = None) -> Any:
    """`value` if it is allowed by `option` (ints widened to float), else a WsolbenchError
    naming `name` (a key such as `train.lr`, a flag such as `--lr`) and `source` (a file)."""
    checked = _checked(value, option)
    if checked is _BAD:
        if option.registry is not None and isinstance(value, str):
            from wsolbench.registry import registry_of

            registry = registry_of(option.registry)
            raise WsolbenchError(
                f"{name}: unknown {option.registry} '{_short(value)}' "
                f"(available: {', '.join(registry.names())})",
                source,
            )
        raise WsolbenchError(
            f"{name} = {_show(value)} is not allowed: expected {option.describe()}", source
        )
    return checked


_BAD = object()


def _checked(value: Any, option: Option) -> Any:
    if value is None:
        return None if option.nullable else _BAD
    if option.kind is list:
        if isinstance(value, str) and option.item_option().kind is str:  # "a,b": the CLI's form
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)) or len(value) < option.min_items:
            return _BAD
        if option.max_items is not None and len(value) > option.max_items:
            return _BAD
        inner = option.item_option()
        items = [_checked(v, inner) for v in value]
        return _BAD if any(v is _BAD for v in items) else items
    if option.kind is dict:
        return dict(value) if isinstance(value, dict) else _BAD
    if option.kind is bool:
        return value if isinstance(value, bool) else _BAD
    if option.kind is str:
        if not isinstance(value, str):
            return _BAD
        if option.pattern is not None and not re.fullmatch(option.pattern, value):
            return _BAD
        if option.registry is not None:
            from wsolbench.registry import registry_of

            registry = registry_of(option.registry)
            return registry.canonical(value) if registry.has(value) else _BAD
    elif option.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return _BAD
    elif option.kind is float:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            return _BAD
        value = float(value)
    if option.choices is not None and value not in option.choices:
        return _BAD
    if option.low is not None and (value < option.low or option.low_open and value == option.low):
        return _BAD
    if option.high is not None and (
        value > option.high or option.high_open and value == option.high
    ):
        return _BAD
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


# ----------------------------------------------------------------------------- text values


def parse_text(text: str) -> Any:
    """A `KEY=VALUE` value from the command line: int, then float, then bool, else the string."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    return text


def parse_bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def parse_key_values(items: list[str], flag: str) -> dict[str, Any]:
    """`KEY=VALUE` strings of a repeatable flag (`--hparam`, `--pp-option`) as a dict."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise WsolbenchError(f"{flag} expects key=value, got '{item}'")
        parsed[key] = parse_text(value)
    return parsed


def parse_hparam_value(text: str) -> Any:
    """`--hparam key=value` values: int, then float, then bool, else the string itself."""
    return parse_text(text)


def flag_type(option: Option):
    """An argparse `type=` for `option`: parse the text, then check it (argparse names the flag)."""

    def convert(text: str) -> Any:
        if option.kind is bool:
            value = parse_bool(text)
        elif option.kind is list:
            parts = [p for p in text.replace(" ", "").split(",") if p]
            value = [parse_text(p) for p in parts]
        elif option.kind in (int, float):
            value = parse_text(text)
            if option.kind is float and isinstance(value, int):
                value = float(value)
        else:
            value = text
        checked = _checked(value, option)
        if checked is _BAD:
            raise argparse.ArgumentTypeError(f"expected {option.describe()}, got '{text}'")
        return checked

    # argparse shows its own words only for other errors; a registry is listed when asked.
    convert.__name__ = option.registry or option.words or option.describe()
    return convert


# ----------------------------------------------------------------------------- factory keywords


def option_from_default(default: Any) -> Option | None:
    """The type a keyword default implies (an int default takes ints only, a float default
    numbers); a list default's items take the type of its first item; None defaults accept
    any scalar unless the factory declares the option (``OPTIONS``)."""
    if default is None:
        return None
    if isinstance(default, bool):
        return Option(bool)
    if isinstance(default, int):
        return Option(int)
    if isinstance(default, float):
        return Option(float)
    if isinstance(default, str):
        return Option(str)
    if isinstance(default, (list, tuple)):
        first = option_from_default(default[0]) if default else None
        return Option(list, item=first if first is not None else None)
    return None


def factory_options(factory: Any, defaults: Mapping[str, Any]) -> dict[str, Option | None]:
    """The Option of each keyword of a registered factory: its ``OPTIONS`` declaration (types
    and ranges, e.g. ``{"grid_size": Option(int, low=1)}``), else what its default implies."""
    declared = getattr(factory, "OPTIONS", {}) or {}
    return {key: declared.get(key) or option_from_default(value) for key, value in defaults.items()}


def check_keywords(
    values: Mapping[str, Any],
    defaults: Mapping[str, Any],
    name: str,
    what: str,
    source: str | Path | None = None,
    options: Mapping[str, Option | None] | None = None,
) -> dict[str, Any]:
    """Check `values` against a factory's keyword `defaults` (known keys) and `options` (their
    Options; derived from the defaults when not given). `name` prefixes keys in errors (e.g.
    `methods.has` or `--hparam`)."""
    checked = {}
    valid = ", ".join(sorted(defaults)) or "none"
    options = (
        options if options is not None else {k: option_from_default(v) for k, v in defaults.items()}
    )
    for key, value in values.items():
        if key not in defaults:
            raise WsolbenchError(
                f"{name}: unknown {what} '{_short(str(key))}' (valid: {valid})", source
            )
        option = options.get(key)
        if option is None:
            if not isinstance(value, (bool, int, float, str)) and value is not None:
                raise WsolbenchError(
                    f"{name}.{key} = {_show(value)} is not allowed: expected a scalar", source
                )
            if isinstance(value, float) and not math.isfinite(value):
                raise WsolbenchError(
                    f"{name}.{key} = {_show(value)} is not allowed: expected a finite number",
                    source,
                )
            checked[key] = value
        else:
            checked[key] = check(value, option, f"{name}.{key}", source)
    return checked
