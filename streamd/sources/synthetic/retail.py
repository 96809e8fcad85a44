"""Synthetic retailer: POS transactions, clickstream, shop events and customer changes.

One producer task per store (`pos-STORE-001`), per web front end (`click-WEB-01`), per shop event
feed (`ecommerce-SHOP-01`) and one for the customer CDC feed (`customers`). Each producer has its
own seeded RNG and its own absolute-deadline schedule, so the same seed and clock give the same
rows, and event ids (`<producer>:<sequence>`) come from the durable sequence allocator, so they
never repeat across restarts. All producers of one seed share the product catalogue and the
customer ids, so the four tables join.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from streamd.sources.synthetic.config import Identifier, IdPrefix, SyntheticTablesConfig
from streamd.sources.synthetic.retail_models import (
    ClickstreamModel,
    CustomerModel,
    EcommerceModel,
    PosModel,
    catalogue,
    store_id,
)
from streamd.sources.synthetic.schedule import Producer, RowModel, SyntheticSource, producer_rng


class RetailSourceConfig(SyntheticTablesConfig):
    """A synthetic retailer: stores ring up baskets, web visitors walk the funnel, the shop emits
    view/add_to_cart/purchase events and customer records change. Rows go to four raw tables (see
    `sql/retail/02_raw_tables.sql`)."""

    TABLE_FIELDS = ("pos_table", "clickstream_table", "ecommerce_table", "customer_table")

    kind: Literal["retail"] = "retail"
    """Selects this source type."""
    name: str = Field(default="retail", min_length=1)
    """Unique name of this source (appears in logs and metrics)."""
    seed: int = 42
    """Seed of the random generators: the same seed and clock produce the same rows."""
    store_count: int = Field(default=10, ge=0, le=999)
    """Stores, each streaming POS transactions (`STORE-001`…)."""
    web_count: int = Field(default=4, ge=0, le=99)
    """Web front ends, each streaming the clickstream of its sessions (`WEB-01`…)."""
    shop_count: int = Field(default=1, ge=0, le=99)
    """E-commerce event feeds, each streaming view/add_to_cart/purchase events (`SHOP-01`…)."""
    customer_changes: bool = True
    """Stream customer inserts and updates (the input of an SCD1/SCD2 pipeline)."""
    product_count: int = Field(default=500, ge=1, le=99999)
    """Products of the catalogue (`SKU-00001`…), shared by every table."""
    customer_count: int = Field(default=10000, ge=1, le=999999)
    """Customers (`CUST-000001`…), shared by every table; each is inserted once, then updated."""
    pos_interval_ms: float = Field(default=1000, ge=1)
    """Milliseconds between two transactions of one store."""
    click_interval_ms: float = Field(default=500, ge=1)
    """Milliseconds between two clickstream events of one web front end."""
    ecommerce_interval_ms: float = Field(default=500, ge=1)
    """Milliseconds between two events of one e-commerce feed."""
    customer_change_interval_ms: float = Field(default=2000, ge=1)
    """Milliseconds between two customer changes (inserts first, interleaved with updates)."""
    jitter: float = Field(default=0.1, ge=0, le=1)
    """Random spread of each interval as a fraction of it (0.1 → ±10 %); the mean rate is kept."""
    database: Identifier = "RETAIL_DEMO"
    """Database of the target tables."""
    schema_: Identifier = Field(default="RAW_DATA", alias="schema")
    """Schema of the target tables."""
    pos_table: Identifier = "POS_TRANSACTIONS_RAW"
    """Table receiving POS transactions."""
    clickstream_table: Identifier = "CLICKSTREAM_RAW"
    """Table receiving clickstream events."""
    ecommerce_table: Identifier = "ECOMMERCE_EVENTS_RAW"
    """Table receiving e-commerce events."""
    customer_table: Identifier = "CUSTOMER_CHANGES_RAW"
    """Table receiving customer inserts and updates."""
    id_prefix: IdPrefix = ""
    """Prepended to producer names (and so to EVENT_IDs, TRANSACTION_IDs, SESSION_IDs and
    ORDER_IDs): give each retailer writing the same tables its own prefix, e.g. "eu-"."""


class RetailSource(SyntheticSource[RetailSourceConfig]):
    """The synthetic retailer as a `Source`."""

    def plan(self) -> list[Producer]:
        """One producer per store, web front end and shop feed, plus the customer changes."""
        c = self.config
        pos, click, shop, customers = c.tables()
        products = catalogue(c.seed, c.product_count)
        plan: list[Producer] = []
        for i in range(c.store_count):
            producer = f"{c.id_prefix}pos-{store_id(i)}"
            rng = producer_rng(c.seed, producer)
            model: RowModel = PosModel(rng, i, products, c.customer_count, c.id_prefix)
            plan.append(Producer(producer, pos, c.pos_interval_ms / 1000, model, rng))
        for i in range(c.web_count):
            producer = f"{c.id_prefix}click-WEB-{i + 1:02d}"
            rng = producer_rng(c.seed, producer)
            model = ClickstreamModel(rng, producer, products, c.customer_count)
            plan.append(Producer(producer, click, c.click_interval_ms / 1000, model, rng))
        for i in range(c.shop_count):
            producer = f"{c.id_prefix}ecommerce-SHOP-{i + 1:02d}"
            rng = producer_rng(c.seed, producer)
            model = EcommerceModel(rng, producer, products, c.customer_count)
            plan.append(Producer(producer, shop, c.ecommerce_interval_ms / 1000, model, rng))
        if c.customer_changes:
            producer = f"{c.id_prefix}customers"
            rng = producer_rng(c.seed, producer)
            model = CustomerModel(c.seed, rng, c.customer_count)
            plan.append(
                Producer(producer, customers, c.customer_change_interval_ms / 1000, model, rng)
            )
        return plan
