"""Column types that both backends store the same way: UTC datetimes and JSON text."""

from __future__ import annotations

import json
from datetime import UTC
from datetime import datetime
from typing import Any

from peewee import DateTimeField
from peewee import TextField


class UTCDateTimeField(DateTimeField):
    """An aware UTC datetime, stored naive-UTC with fixed microseconds so text sorts right."""

    def db_value(self, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"{self.name}: expected an aware datetime, got {value!r}")
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    def python_value(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JSONField(TextField):
    """A JSON document in a text column (portable; nothing queries inside it)."""

    def db_value(self, value: Any) -> Any:
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def python_value(self, value: Any) -> Any:
        return None if value is None else json.loads(value)
