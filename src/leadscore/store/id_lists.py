"""``column IN <a list bound as one parameter>``: one statement text whatever the list's length.

An expanding ``IN (?, ?, ...)`` renders a new statement for every length, so nothing downstream can reuse
it: PostgreSQL plans it afresh each time (psycopg prepares a statement only once its text repeats) and
SQLite re-prepares it. ``in_list(column, name, element_type)`` binds the whole list as one value instead:
``column = ANY(%(name)s)`` with an array on PostgreSQL, ``column IN (SELECT value FROM json_each(?))``
with a JSON array on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import BigInteger, Boolean, Text, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator, TypeEngine


class _IdList(TypeDecorator[list[Any]]):
    """A list bound as one value: an array (PostgreSQL) or JSON text (SQLite)."""

    impl = Text
    cache_ok = True

    def __init__(self, element: type[TypeEngine[Any]]) -> None:
        super().__init__()
        self.element = element

    def load_dialect_impl(self, dialect: Any) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(self.element()))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Iterable[Any] | None, dialect: Any) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return list(value)
        return orjson.dumps(list(value)).decode()


class InList(ColumnElement[bool]):
    inherit_cache = True
    type = Boolean()
    # a comparison already: without this, SQLite (no native boolean) gets ``(... IN ...) = 1``, which
    # no index can serve
    _is_implicitly_boolean = True
    _traverse_internals = [  # noqa: RUF012 - SQLAlchemy's cache-key protocol
        ("column", InternalTraversal.dp_clauseelement),
        ("values", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any], values: BindParameter[Any]) -> None:
        self.column, self.values = column, values


@compiles(InList)
def _in_list(element: InList, compiler: Any, **kw: Any) -> str:
    column, values = compiler.process(element.column, **kw), compiler.process(element.values, **kw)
    return f"{column} IN (SELECT value FROM json_each({values}))"


@compiles(InList, "postgresql")
def _in_list_pg(element: InList, compiler: Any, **kw: Any) -> str:
    column, values = compiler.process(element.column, **kw), compiler.process(element.values, **kw)
    return f"{column} = ANY({values})"


def in_list(column: Any, name: str, element: type[TypeEngine[Any]] = BigInteger) -> InList:
    """``column`` is one of the list bound to ``name`` at execution (ints by default, or Text)."""
    return InList(column, bindparam(name, type_=_IdList(element)))


def in_values(column: Any, values: Iterable[Any], element: type[TypeEngine[Any]] = BigInteger) -> InList:
    """``column`` is one of ``values``, bound now as one parameter: a list of any length (an expanding
    ``IN`` binds a parameter per value, and a PostgreSQL statement takes at most 65,535)."""
    return InList(column, bindparam("values", list(values), type_=_IdList(element), unique=True))


class ContainsAny(ColumnElement[bool]):
    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True
    _traverse_internals = [  # noqa: RUF012 - SQLAlchemy's cache-key protocol
        ("text", InternalTraversal.dp_clauseelement),
        ("values", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, text: ColumnElement[Any], values: BindParameter[Any]) -> None:
        self.text, self.values = text, values


@compiles(ContainsAny)
def _contains_any(element: ContainsAny, compiler: Any, **kw: Any) -> str:
    text, values = compiler.process(element.text, **kw), compiler.process(element.values, **kw)
    return f"EXISTS (SELECT 1 FROM json_each({values}) WHERE instr({text}, value) > 0)"


@compiles(ContainsAny, "postgresql")
def _contains_any_pg(element: ContainsAny, compiler: Any, **kw: Any) -> str:
    text, values = compiler.process(element.text, **kw), compiler.process(element.values, **kw)
    return f"EXISTS (SELECT 1 FROM unnest({values}) AS part WHERE strpos({text}, part) > 0)"


def contains_any(text: ColumnElement[Any], parts: Iterable[str]) -> ContainsAny:
    """``text`` contains one of ``parts`` (literally: no pattern characters), the list bound as one
    parameter: an OR of a LIKE a part nests one level deeper each on SQLite (1,000 at most) and takes a
    parameter each (65,535 at most a PostgreSQL statement)."""
    return ContainsAny(text, bindparam("parts", list(parts), type_=_IdList(Text), unique=True))
