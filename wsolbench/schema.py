"""One schema mechanism for every suite table.

Two shapes cover them all:

- ``Keys``: a table of fixed keys, each with its ``Option`` and default (``[dataset]``,
  ``[train]``, ``[evaluation]``, ``[dataset.synthetic]``, a classifier's keys);
- ``Entries``: a table of labelled tables, ``[<section>.<label>]``, each configuring one
  registered entry (``[methods.*]``, ``[postprocessors.*]``, ``[explainers.*]``,
  ``[classifiers.*]``). Every label passes the one name rule (``names.check_label``: labels
  become folder and file names); the entry is named by a key (``method = "spa"``) or by the
  label itself; its options are checked by its registry (keys, types, ranges, then its own
  constructor), or by fixed ``Keys``.

Errors name the key as the user wrote it: ``train.lr``, or ``train.lr (from --set
train.lr=-1)`` when an override set it (``KeyNames``), and the suite file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsolbench.errors import WsolbenchError
from wsolbench.names import check_label
from wsolbench.options import Option, check


class KeyNames:
    """Names keys in errors: `train.lr`, or `train.lr (from --set train.lr=-1)` when an
    override set it (or the table holding it)."""

    def __init__(self, origins: Mapping[str, str] | None = None):
        self.origins = dict(origins or {})

    def __call__(self, key: str) -> str:
        parts = key.split(".")
        for end in range(len(parts), 0, -1):
            prefix = ".".join(parts[:end])
            if prefix in self.origins:
                shown = self.origins[prefix]
                shown = shown if len(shown) <= 80 else shown[:77] + "..."
                return f"{key} (from --set {shown})"
        return key


@dataclass(frozen=True)
class Keys:
    """A table of fixed keys: each key's Option and default."""

    options: Mapping[str, tuple[Option, Any]]

    def check(
        self,
        table: Any,
        section: str,
        source: str | Path | None,
        name_of: KeyNames,
        defaults: bool = True,
    ) -> dict[str, Any]:
        """The table's values, checked; a missing key takes its default (with ``defaults``)
        or stays absent."""
        if not isinstance(table, dict):
            raise WsolbenchError(f"{name_of(section)}: [{section}] must be a table", source)
        for key in table:
            if key not in self.options:
                raise WsolbenchError(
                    f"unknown key '{name_of(f'{section}.{key}')}' "
                    f"(valid: {', '.join(self.options)})",
                    source,
                )
        return {
            key: check(table.get(key, default), option, name_of(f"{section}.{key}"), source)
            for key, (option, default) in self.options.items()
            if defaults or key in table
        }


@dataclass
class Entry:
    """One ``[<section>.<label>]`` table: its label, the entry it configures, its options."""

    label: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # the Entries' ``extra`` keys


@dataclass(frozen=True)
class Entries:
    """``[<section>.<label>]`` tables of one kind of registered entry."""

    kind: str | None  # the registry of the entries (None: `keys` check the options)
    select: str | None = None  # the key naming the entry (default: the label); None: the label
    keys: Keys | None = None  # fixed keys instead of the entry's registered options
    what: str = "option"  # what an entry's keys are called in errors
    example: str = ""  # shown when the section is empty
    # Keys of every entry's table that are not the entry's options (a method's `checkpoint`),
    # checked by their Options and kept apart (``Entry.extra``).
    extra: Keys | None = None

    def check(
        self,
        table: Any,
        section: str,
        source: str | Path | None,
        name_of: KeyNames,
        build: Mapping[str, Any] | None = None,
    ) -> list[Entry]:
        """Every entry, checked: label, entry name, options (with ``build``, the keywords its
        factory is probed with, e.g. a method's backbone)."""
        if not isinstance(table, dict) or not table:
            raise WsolbenchError(
                f"[{section}] must name at least one table, e.g. [{section}.{self.example}]",
                source,
            )
        entries = []
        for label, options in table.items():
            key = name_of(f"{section}.{label}")
            check_label(label, f"the label of [{key}]", source)
            if not isinstance(options, dict):
                raise WsolbenchError(f"[{key}] must be a table", source)
            options = dict(options)
            name = options.pop(self.select, label) if self.select else label
            extra = {}
            if self.extra is not None:
                given = {k: options.pop(k) for k in list(options) if k in self.extra.options}
                extra = self.extra.check(given, f"{section}.{label}", source, name_of)
            where = name_of(f"{section}.{label}.{self.select}") if self.select else key
            if self.keys is not None:
                name = check(name, Option(str), where, source)
                options = self.keys.check(options, f"{section}.{label}", source, name_of)
            else:
                name = check(name, Option(str, registry=self.kind), where, source)
                from wsolbench.registry import registry_of

                options = registry_of(self.kind).check_options(
                    name, options, key, source, self.what, **(build or {})
                )
            entries.append(Entry(label, name, options, extra))
        return entries
