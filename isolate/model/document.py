"""Read a JSON document isolate wrote (manifest, results) back, naming where it is wrong.

``Reader`` wraps one JSON object at its key path. Each read converts one key and, when
the key is missing or its value has the wrong shape, raises the document's error
(a ``DocumentError``) naming the full key path: ``files[1203].sha256: missing``,
``cells[0].observed.seconds: bad value 'soon': could not convert string to float``.
Nested objects are read by nested readers; their errors are prefixed on the way out,
so a ``from_dict`` can read an object alone or inside a larger document.

Conversions stay as lenient as the writer's types allow (``str(value)``, ``int(value)``):
a reader refuses what cannot be converted, not what merely looks unusual.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from isolate.errors import DocumentError

T = TypeVar("T")

_MISSING: Any = object()
_SHOWN = 60  # characters of a bad value quoted in a message
_CONVERSION_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError,
                      OverflowError)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "..."


def kind_of(value: object) -> str:
    """A JSON value's kind, in words."""
    for typ, name in ((bool, "true or false"), (int, "a number"), (float, "a number"),
                      (str, "a string"), (list, "a list"), (dict, "an object")):
        if isinstance(value, typ):
            return name
    return "null" if value is None else type(value).__name__


class Reader:
    """One JSON object of a document; every read names its key path in errors."""

    __slots__ = ("_data", "_error")

    def __init__(self, data: object, error: type[DocumentError]) -> None:
        if type(data) is not dict and not isinstance(data, Mapping):
            raise error(f"expected an object, got {kind_of(data)}")
        self._data: Mapping[str, Any] = data
        self._error = error

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data))

    def fail(self, key: str, reason: str) -> DocumentError:
        """The document's error for ``key`` (raise it)."""
        return self._error(reason, key=key)

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        """The value of ``key`` as it is; ``missing`` when absent and no default is given."""
        try:
            return self._data[key]
        except KeyError:
            if default is _MISSING:
                raise self._error("missing", key=key) from None
            return default

    def value(self, key: str, convert: Callable[[Any], T], default: Any = _MISSING) -> T:
        """``convert(value of key)``; ``default`` (not converted) when the key is absent."""
        try:
            value = self._data[key]
        except KeyError:
            if default is _MISSING:
                raise self._error("missing", key=key) from None
            return default  # type: ignore[no-any-return]
        try:
            return convert(value)
        except DocumentError as exc:
            raise exc.under(key) from exc
        except _CONVERSION_ERRORS as exc:
            raise self._error(f"bad value {_show(value)}: {exc}", key=key) from exc

    def obj(self, key: str, build: Callable[[Reader], T], default: Any = _MISSING) -> T:
        """The object at ``key``, read by ``build`` with a reader of its own."""
        return self.value(key, lambda v: build(Reader(v, self._error)), default)

    def objs(self, key: str, build: Callable[[Reader], T], default: Any = _MISSING
             ) -> tuple[T, ...]:
        """The list of objects at ``key``, each read by ``build``; ``key[i]`` in errors."""
        return self.value(key, lambda v: self.each(v, build), default)

    def each(self, items: Any, build: Callable[[Reader], T]) -> tuple[T, ...]:
        """``build`` applied to a reader of each object of the list ``items``."""
        if not isinstance(items, (list, tuple)):
            raise self._error(f"expected a list, got {kind_of(items)}")
        out = []
        for i, item in enumerate(items):
            try:
                out.append(build(Reader(item, self._error)))
            except DocumentError as exc:
                raise exc.under(f"[{i}]") from exc
        return tuple(out)
