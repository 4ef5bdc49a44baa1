"""Typed, range-checked options: one checker for suite keys, CLI flags and keyword options.

An `Option` says what a value may be (type, range, choices); `check` returns the value (ints
widened to float where a number is expected) or raises one `WsolbenchError` that names the
key, flag or `--set` expression and says what is allowed. Registered factories (methods,
post-processors) declare their options by their keyword defaults; `options_from_defaults`
derives an `Option` from each default, so their keys are type-checked the same way.
"""

from __future__ import annotations

import argparse
import math
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
    item: type | None = None  # element type of a list
    nullable: bool = False  # None allowed (TOML has no null: only from Python or a default)
    min_items: int = 0

    def describe(self) -> str:
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind is list:
            inner = Option(self.item or float, self.low, self.high, self.low_open, self.high_open)
            text = f"a {'non-empty ' if self.min_items else ''}list, each {inner.describe()}"
        else:
            text = _NAMES[self.kind] + self._range()
        return text + (" (or none)" if self.nullable else "")

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
        raise WsolbenchError(
            f"{name} = {_show(value)} is not allowed: expected {option.describe()}", source
        )
    return checked


_BAD = object()


def _checked(value: Any, option: Option) -> Any:
    if value is None:
        return None if option.nullable else _BAD
    if option.kind is list:
        if not isinstance(value, (list, tuple)) or len(value) < option.min_items:
            return _BAD
        inner = Option(
            option.item or float, option.low, option.high, option.low_open, option.high_open
        )
        items = [_checked(v, inner) for v in value]
        return _BAD if any(v is _BAD for v in items) else items
    if option.kind is dict:
        return dict(value) if isinstance(value, dict) else _BAD
    if option.kind is bool:
        return value if isinstance(value, bool) else _BAD
    if option.kind is str:
        if not isinstance(value, str):
            return _BAD
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

    convert.__name__ = option.describe()
    return convert


# ----------------------------------------------------------------------------- factory keywords


def option_from_default(default: Any) -> Option | None:
    """The type a keyword default implies (an int default also takes floats only if it is a
    float); None defaults accept any scalar and leave the check to the factory."""
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
        return Option(list)
    return None


def check_keywords(
    values: Mapping[str, Any],
    defaults: Mapping[str, Any],
    name: str,
    what: str,
    source: str | Path | None = None,
) -> dict[str, Any]:
    """Check `values` against a factory's keyword `defaults`: known keys, the defaults' types.
    `name` prefixes keys in errors (e.g. `methods.has` or `--hparam`)."""
    checked = {}
    valid = ", ".join(sorted(defaults)) or "none"
    for key, value in values.items():
        if key not in defaults:
            raise WsolbenchError(f"{name}: unknown {what} '{key}' (valid: {valid})", source)
        option = option_from_default(defaults[key])
        if option is None:
            if not isinstance(value, (bool, int, float, str)) and value is not None:
                raise WsolbenchError(
                    f"{name}.{key} = {_show(value)} is not allowed: expected a scalar", source
                )
            checked[key] = value
        else:
            checked[key] = check(value, option, f"{name}.{key}", source)
    return checked
