"""Read a parsed TOML/JSON mapping into typed values, collecting every problem at once.

Each problem names its key path (``tests.command[2]``); unknown keys get the closest
valid key as a suggestion. The caller raises one error holding all problems.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


def type_name(value: object) -> str:
    for typ, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
                      (list, "list"), (dict, "table")):
        if isinstance(value, typ):
            return name
    return type(value).__name__


class Problem(str):
    """One validation problem: ``key`` and a message. Behaves as its rendered text."""

    key: str

    def __new__(cls, key: str, message: str) -> Problem:
        self = super().__new__(cls, f"{key}: {message}" if key else message)
        self.key = key
        return self


class Fields:
    """A view on one table of a document that records the keys it reads."""

    def __init__(self, data: Mapping[str, Any], where: str, problems: list[Problem]):
        self._data = data
        self._where = where
        self._problems = problems
        self._known: set[str] = set()

    @property
    def problems(self) -> list[Problem]:
        return self._problems

    def path(self, key: str) -> str:
        return f"{self._where}.{key}" if self._where else key

    def problem(self, key: str, message: str) -> None:
        self._problems.append(Problem(self.path(key) if key else self._where, message))

    def has(self, key: str) -> bool:
        self._known.add(key)
        return key in self._data

    def get(self, key: str, typ: type[T], default: T | None = None, *, required: bool = False) -> T | None:
        self._known.add(key)
        if key not in self._data:
            if required:
                self.problem(key, f"missing; it must be {_TYPE_NAMES.get(typ, typ.__name__)}")
            return default
        value = self._data[key]
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            self.problem(
                key, f"expected {_TYPE_NAMES.get(typ, typ.__name__)}, got {type_name(value)} {value!r}"
            )
            return default
        return value

    def string(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.get(key, str, default, required=required)
        if required and value == "":
            self.problem(key, "must not be empty")
        return value

    def str_list(self, key: str, default: tuple[str, ...] = (), *, required: bool = False) -> tuple[str, ...]:
        value = self.get(key, list, None, required=required)
        if value is None:
            return default
        out: list[str] = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                out.append(item)
            else:
                self.problem(f"{key}[{i}]", f"expected a string, got {type_name(item)} {item!r}")
        return tuple(out)

    def keys(self) -> list[str]:
        """The table's keys, for tables keyed by name (each is then read with ``table``)."""
        return list(self._data)

    def table(self, key: str, *, required: bool = False) -> Fields:
        value = self.get(key, dict, None, required=required)
        return Fields(value or {}, self.path(key), self._problems)

    def tables(self, key: str) -> list[Fields]:
        value = self.get(key, list, None)
        out = []
        for i, item in enumerate(value or []):
            if isinstance(item, dict):
                out.append(Fields(item, f"{self.path(key)}[{i}]", self._problems))
            else:
                self.problem(f"{key}[{i}]", f"expected a table, got {type_name(item)}")
        return out

    def finish(self) -> None:
        """Report keys that nobody read, with the closest known key."""
        for key in self._data:
            if key in self._known:
                continue
            close = difflib.get_close_matches(key, sorted(self._known), n=1, cutoff=0.6)
            valid = ", ".join(sorted(self._known))
            tip = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {valid}"
            self.problem(key, f"unknown key{tip}")
