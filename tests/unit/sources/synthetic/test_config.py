"""SyntheticTablesConfig: what both synthetic sources' configs get from their shared base."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streamd.sources.synthetic.config import SyntheticTablesConfig
from streamd.sources.synthetic.manufacturing import ManufacturingSourceConfig
from streamd.sources.synthetic.retail import RetailSourceConfig

KINDS: list[type[SyntheticTablesConfig]] = [ManufacturingSourceConfig, RetailSourceConfig]


def test_tables_are_qualified_in_table_field_order() -> None:
    plant = ManufacturingSourceConfig.model_validate({"database": "DB", "schema": "S"})
    assert plant.tables() == [
        "DB.S.SENSOR_DATA_RAW",
        "DB.S.PRODUCTION_DATA_RAW",
        "DB.S.QUALITY_DATA_RAW",
    ]
    shop = RetailSourceConfig.model_validate(
        {"database": "R", "schema": "RAW", "customer_table": "CUST"}
    )
    assert shop.tables() == [
        "R.RAW.POS_TRANSACTIONS_RAW",
        "R.RAW.CLICKSTREAM_RAW",
        "R.RAW.ECOMMERCE_EVENTS_RAW",
        "R.RAW.CUST",
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_every_name_that_reaches_sql_is_a_plain_identifier(
    kind: type[SyntheticTablesConfig],
) -> None:
    for field in ("database", "schema_", *kind.TABLE_FIELDS):
        with pytest.raises(ValidationError, match="not a plain Snowflake identifier"):
            kind.model_validate({field: "BAD NAME"})
        assert kind.model_validate({field: "Ok_1$"})


@pytest.mark.parametrize("kind", KINDS)
def test_id_prefix_is_short_and_safe(kind: type[SyntheticTablesConfig]) -> None:
    assert kind.model_validate({"id_prefix": "plant2-"}).id_prefix == "plant2-"
    for bad in ("has space", "x" * 33, "semi;colon"):
        with pytest.raises(ValidationError, match="id_prefix"):
            kind.model_validate({"id_prefix": bad})
