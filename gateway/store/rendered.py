"""Statements of the endpoint's path, rendered once per parameter style instead of once a call.

Peewee renders each query anew, about 0.07 ms of CPU for a small one. A protected call ran
seven of them, about half of its CPU (bench/endpoint_cpu.py). Here they are SQL text with bound
parameters, each value converted by its field as peewee converts it, in the form that works
on SQLite (3.24 or later) and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from gateway.store.db import database

_RENDERED: dict[tuple[str, str], str] = {}


def execute(name: str, build: Callable[[str], str], params: Sequence[Any]) -> Any:
    """Run the statement `build(param)` renders for the models' database (built the first
    time `name` is used with its parameter style); return the cursor."""
    param = database.obj.param
    sql = _RENDERED.get((name, param))
    if sql is None:
        sql = _RENDERED[name, param] = build(param)
    return database.execute_sql(sql, params)
