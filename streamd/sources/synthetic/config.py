"""What the synthetic sources' configs share: plain-identifier table names, their qualified
names, and the `id_prefix` that keeps two sources' EVENT_IDs apart in the same tables."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, ClassVar

from pydantic import AfterValidator, ConfigDict, Field

from streamd.config.base import FrozenModel

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def _plain_identifier(value: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a plain Snowflake identifier; use letters, digits, _ and $, "
            "not starting with a digit"
        )
    return value


Identifier = Annotated[str, AfterValidator(_plain_identifier)]
"""A database, schema or table name that needs no quoting (it is put into SQL unquoted)."""

IdPrefix = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{0,32}$")]
"""What may precede producer names (and so EVENT_IDs)."""


class SyntheticTablesConfig(FrozenModel):
    """The base of a synthetic source's config: it writes `TABLE_FIELDS` under database.schema."""

    model_config = ConfigDict(populate_by_name=True)

    TABLE_FIELDS: ClassVar[tuple[str, ...]]
    """The fields naming this source's tables, in the order `tables()` returns them."""

    if TYPE_CHECKING:
        # Each subclass declares these fields itself, with its own defaults and documentation, in
        # the order `streamd config example` prints them (fields declared here would come first).
        database: str
        schema_: str
        id_prefix: str

    def tables(self) -> list[str]:
        """The fully qualified tables (`DB.SCHEMA.TABLE`) this source writes."""
        return [f"{self.database}.{self.schema_}.{getattr(self, f)}" for f in self.TABLE_FIELDS]
