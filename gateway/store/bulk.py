"""Raw statements run for many rows at once (executemany), where peewee's query builder would
cost more than the database: it renders one insert of 49 columns in about 0.1 ms of CPU, and
a multi-row insert of 1,000 run rows in about 30 ms."""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any

import peewee

from gateway.store.db import database
from gateway.store.db import is_sqlite

_CHUNK = 1000  # rows handed to one executemany: bounded memory for 100,000 rows
_PAGE = 500  # PostgreSQL: statements sent in one round trip


def execute_many(sql: str, rows: Iterable[Sequence[Any]]) -> None:
    """Run `sql` once per row of parameters, raising peewee's errors as its own queries do.

    SQLite runs them in process. psycopg2's executemany is a round trip per row, so on
    PostgreSQL they go in pages of statements (execute_batch): 5,000 run rows in 10 trips.
    """
    with peewee.__exception_wrapper__:  # type: ignore[attr-defined]  # not in its stubs
        cursor = database.cursor()
        if is_sqlite():
            cursor.executemany(sql, rows)
        else:
            from psycopg2.extras import execute_batch  # type: ignore[import-untyped]

            execute_batch(cursor, sql, rows, page_size=_PAGE)


def insert_sql(
    model: type[peewee.Model],
    fields: Sequence[peewee.Field],
    param: str,
    *,
    skip_duplicates: bool = False,
) -> str:
    """Return `INSERT INTO table (columns) VALUES (params)` for `fields` of `model`; with
    `skip_duplicates`, ON CONFLICT DO NOTHING (SQLite 3.24+ and PostgreSQL)."""
    return (
        f"INSERT INTO {model._meta.table_name} ({', '.join(f.column_name for f in fields)}) "
        f"VALUES ({', '.join(param for _ in fields)})"
        + (" ON CONFLICT DO NOTHING" if skip_duplicates else "")
    )


def assignments(fields: Iterable[peewee.Field], param: str) -> str:
    """Return `a = param, b = param, …` for an UPDATE's SET."""
    return ", ".join(f"{field.column_name} = {param}" for field in fields)


def insert_rows(
    model: type[peewee.Model], rows: Sequence[dict[str, Any]], *, skip_duplicates: bool = False
) -> None:
    """Insert `rows` (field name -> value; every row has the first row's keys), each value
    converted as peewee converts it. With `skip_duplicates`, a row that would break a unique
    key is left out (ON CONFLICT DO NOTHING: SQLite and PostgreSQL; other constraints still
    raise). Ids are not read back: callers that need them select by a unique key."""
    if not rows:
        return
    names = list(rows[0])
    fields = [model._meta.fields[name] for name in names]
    sql = insert_sql(model, fields, database.obj.param, skip_duplicates=skip_duplicates)
    pairs = list(zip(fields, names, strict=True))
    for start in range(0, len(rows), _CHUNK):
        execute_many(
            sql,
            ([f.db_value(row[n]) for f, n in pairs] for row in rows[start : start + _CHUNK]),
        )


def insert_models(instances: Sequence[peewee.Model]) -> None:
    """Insert unsaved instances of one model, each column as `save()` would write it: the
    fields any of them set (a column none sets keeps its database default)."""
    if not instances:
        return
    model = type(instances[0])
    given = set().union(*(instance.__data__ for instance in instances))
    names = [
        f.name
        for f in model._meta.sorted_fields
        if f.name in given and not isinstance(f, peewee.AutoField)
    ]
    insert_rows(model, [{n: i.__data__.get(n) for n in names} for i in instances])


def in_list(field: peewee.Field, values: Collection[Any]) -> peewee.Node:
    """`field IN (values)`, the placeholders rendered at once and each value converted by the
    field: peewee renders an IN list value by value, about 10 µs each (a burst updates
    thousands of rows by id; a sync reads a thousand jobs by name)."""
    if not values:
        return peewee.SQL("1 = 0")  # what peewee renders for an empty IN list
    param = database.obj.param
    placeholders = ", ".join(param for _ in values)
    converted = [field.db_value(value) for value in values]  # type: ignore[no-untyped-call]
    return peewee.NodeList((field, peewee.SQL(f"IN ({placeholders})", converted)))
