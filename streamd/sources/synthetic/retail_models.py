"""Row builders for the synthetic retailer: POS baskets, web sessions, shop events, customer changes.

Each builder owns one producer's state and its `SmallRng`; `row(event_id, at, sequence)` is
pure apart from that state, so the same seed and the same event times give the same rows. The
scheduling, sequence numbers and sending live in `streamd.sources.synthetic.retail`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streamd.rows import Row
from streamd.sources.synthetic.event_fields import timestamp, with_payload
from streamd.sources.synthetic.rng import SmallRng
from streamd.sources.synthetic.schedule import producer_rng

# --- the catalogue and the customers -------------------------------------------------------------

CATEGORIES: tuple[tuple[str, float, float], ...] = (
    ("ELECTRONICS", 25.0, 900.0),
    ("APPAREL", 8.0, 120.0),
    ("HOME", 5.0, 250.0),
    ("GROCERY", 0.5, 25.0),
    ("BEAUTY", 3.0, 60.0),
    ("SPORTS", 10.0, 300.0),
    ("TOYS", 4.0, 80.0),
    ("BOOKS", 4.0, 40.0),
)
"""(category, lowest price, highest price); products are assigned round-robin."""

PAYMENT_METHODS: tuple[tuple[str, float], ...] = (
    ("CARD", 0.55),
    ("CONTACTLESS", 0.25),
    ("CASH", 0.12),
    ("MOBILE_WALLET", 0.06),
    ("GIFT_CARD", 0.02),
)
DEVICES: tuple[tuple[str, float], ...] = (("MOBILE", 0.58), ("DESKTOP", 0.34), ("TABLET", 0.08))
TIERS = ("BRONZE", "SILVER", "GOLD", "PLATINUM")
CITIES = (
    "New York", "Chicago", "Seattle", "Austin", "Denver", "Boston", "Atlanta", "Miami",
    "Portland", "San Diego", "Phoenix", "Minneapolis",
)  # fmt: skip
FIRST_NAMES = (
    "Ava", "Ben", "Chloe", "Diego", "Emma", "Farid", "Grace", "Hiro", "Isla", "Jonas", "Kira",
    "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Ravi", "Sofia", "Tom",
)  # fmt: skip
LAST_NAMES = (
    "Garcia", "Smith", "Chen", "Okafor", "Müller", "Rossi", "Kim", "Nguyen", "Silva", "Patel",
    "Johnson", "Novak", "Haddad", "Larsen", "Tanaka",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "mail.example.org", "shop.example.net")

FUNNEL: tuple[tuple[str, str], ...] = (
    ("home", "page_view"),
    ("category", "page_view"),
    ("product", "product_view"),
    ("cart", "add_to_cart"),
    ("checkout", "purchase"),
)
"""The funnel a web session walks forward through: (page kind, event type), step 1..5."""
ADVANCE = (0.65, 0.55, 0.35, 0.55)
"""Chance of moving from step n to n+1 (after possibly browsing more pages of step n)."""
STAY = (0.0, 0.45, 0.5, 0.15)
"""Chance of another page of the same step first (another category, another product)."""


def store_id(index: int) -> str:
    """`STORE-001` for index 0."""
    return f"STORE-{index + 1:03d}"


def product_id(index: int) -> str:
    """`SKU-00001` for index 0."""
    return f"SKU-{index + 1:05d}"


def customer_id(index: int) -> str:
    """`CUST-000001` for index 0."""
    return f"CUST-{index + 1:06d}"


@dataclass(frozen=True, slots=True)
class Product:
    """One product of the catalogue; `cents` is the list price in cents."""

    id: str
    category: str
    cents: int

    @property
    def price(self) -> float:
        return self.cents / 100


def catalogue(seed: int, count: int) -> list[Product]:
    """The products, identical for every producer of one seed (POS and web sell the same)."""
    rng = producer_rng(seed, "catalogue")
    products: list[Product] = []
    for i in range(count):
        category, low, high = CATEGORIES[i % len(CATEGORIES)]
        # Log-uniform between the bounds, ending in .99 like shelf prices do.
        price = low * (high / low) ** rng.random()
        products.append(Product(product_id(i), category, max(int(price) * 100 + 99, 99)))
    return products


def _popular(rng: SmallRng, count: int) -> int:
    """An index in 0..count-1, skewed so low indexes are picked far more often (Zipf-like)."""
    return min(int(rng.paretovariate(1.2)) - 1, count - 1) if count > 1 else 0


def _pick(rng: SmallRng, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.weighted([n for n, _ in weighted], [w for _, w in weighted])


# --- point of sale -------------------------------------------------------------------------------


class PosModel:
    """One store's tills: baskets of 1–8 line items; a third of shoppers are anonymous."""

    def __init__(
        self, rng: SmallRng, index: int, products: list[Product], customers: int, prefix: str
    ) -> None:
        self.rng = rng
        self.store = store_id(index)
        self.products = products
        self.customers = customers
        self.prefix = prefix

    def row(self, event_id: str, at: datetime, sequence: int) -> Row:
        """The next transaction; TOTAL_AMOUNT is the exact sum of the line items."""
        rng = self.rng
        items: list[dict[str, Any]] = []
        total_cents = 0
        for _ in range(min(1 + int(rng.expovariate(1 / 2.0)), 8)):
            product = self.products[rng.randrange(len(self.products))]
            quantity = 1 if rng.random() < 0.75 else rng.randint(2, 4)
            # Now and then an item is on promotion.
            cents = product.cents if rng.random() < 0.85 else product.cents * 8 // 10
            total_cents += cents * quantity
            items.append(
                {"product_id": product.id, "quantity": quantity, "unit_price": cents / 100}
            )
        known = rng.random() < 0.67
        return with_payload(
            {
                "EVENT_ID": event_id,
                "EVENT_TIMESTAMP": timestamp(at),
                "TRANSACTION_ID": f"{self.prefix}{self.store}-T{sequence:09d}",
                "STORE_ID": self.store,
                "CUSTOMER_ID": customer_id(rng.randrange(self.customers)) if known else None,
                "LINE_ITEMS": items,
                "ITEM_COUNT": sum(item["quantity"] for item in items),
                "TOTAL_AMOUNT": total_cents / 100,
                "PAYMENT_METHOD": _pick(rng, PAYMENT_METHODS),
            }
        )


# --- clickstream ---------------------------------------------------------------------------------


class ClickstreamModel:
    """One web front end's visitors, one session at a time, each walking the funnel forward.

    A session starts at the home page, browses categories and products, may add to cart and check
    out; at every step it may leave instead (drop-off), and the next event starts a new session.
    """

    def __init__(
        self, rng: SmallRng, producer: str, products: list[Product], customers: int
    ) -> None:
        self.rng = rng
        self.producer = producer
        self.products = products
        self.customers = customers
        self.session: str | None = None
        self.customer: str | None = None
        self.device = "DESKTOP"
        self.step = 0
        self.product: Product | None = None

    def _next_step(self, sequence: int) -> int:
        rng = self.rng
        if self.session is not None and self.step < len(FUNNEL) - 1:
            if rng.random() < STAY[self.step]:
                return self.step
            if rng.random() < ADVANCE[self.step]:
                return self.step + 1
        # Dropped off (or checked out): this event opens a new session at the home page.
        self.session = f"{self.producer}-S{sequence:09d}"
        logged_in = rng.random() < 0.6
        self.customer = customer_id(rng.randrange(self.customers)) if logged_in else None
        self.device = _pick(rng, DEVICES)
        self.product = None
        return 0

    def row(self, event_id: str, at: datetime, sequence: int) -> Row:
        """The next page event of the current (or a new) session."""
        self.step = self._next_step(sequence)
        page_kind, event_type = FUNNEL[self.step]
        if page_kind == "product":
            self.product = self.products[_popular(self.rng, len(self.products))]
        if page_kind == "category":
            page = f"/c/{self.rng.choice(CATEGORIES)[0].lower()}"
        elif page_kind == "product" and self.product is not None:
            page = f"/p/{self.product.id}"
        else:
            page = {"home": "/", "cart": "/cart", "checkout": "/checkout"}[page_kind]
        assert self.session is not None
        return with_payload(
            {
                "EVENT_ID": event_id,
                "EVENT_TIMESTAMP": timestamp(at),
                "SESSION_ID": self.session,
                "CUSTOMER_ID": self.customer,
                "PAGE": page,
                "EVENT_TYPE": event_type,
                "FUNNEL_STEP": self.step + 1,
                "PRODUCT_ID": self.product.id if self.product and self.step >= 2 else None,
                "DEVICE": self.device,
            }
        )


# --- e-commerce events ---------------------------------------------------------------------------


class EcommerceModel:
    """Shop events over the product and customer dimensions: views, add-to-carts and purchases.

    An add_to_cart is of a product the same customer viewed recently, and a purchase buys what that
    customer has in the cart, so the three event types form consistent per-customer paths.
    """

    def __init__(
        self, rng: SmallRng, producer: str, products: list[Product], customers: int
    ) -> None:
        self.rng = rng
        self.producer = producer
        self.products = products
        self.customers = customers
        self.viewed: list[tuple[str, Product]] = []
        self.carts: dict[str, list[tuple[Product, int]]] = {}

    def row(self, event_id: str, at: datetime, sequence: int) -> Row:
        """The next shop event."""
        rng = self.rng
        draw = rng.random()
        order: str | None = None
        if draw < 0.06 and self.carts:
            customer = rng.choice(sorted(self.carts))
            product, quantity = self.carts[customer].pop(0)
            if not self.carts[customer]:
                del self.carts[customer]
            event_type, order = "purchase", f"{self.producer}-O{sequence:09d}"
        elif draw < 0.22 and self.viewed:
            customer, product = self.viewed.pop(rng.randrange(len(self.viewed)))
            quantity = 1 if rng.random() < 0.8 else rng.randint(2, 3)
            cart = self.carts.setdefault(customer, [])
            cart.append((product, quantity))
            event_type = "add_to_cart"
        else:
            customer = customer_id(_popular(rng, self.customers))
            product = self.products[_popular(rng, len(self.products))]
            quantity, event_type = 1, "view"
            self.viewed.append((customer, product))
            del self.viewed[:-50]  # only recent views turn into add-to-carts
        return with_payload(
            {
                "EVENT_ID": event_id,
                "EVENT_TIMESTAMP": timestamp(at),
                "EVENT_TYPE": event_type,
                "PRODUCT_ID": product.id,
                "CATEGORY": product.category,
                "CUSTOMER_ID": customer,
                "PRICE": product.price,
                "QUANTITY": quantity,
                "ORDER_ID": order,
            }
        )


# --- customer changes ----------------------------------------------------------------------------


class CustomerModel:
    """Customer records as a CDC feed: each customer is inserted once, then updated now and then.

    Which customer a row concerns follows from its sequence number alone: while some customers are
    not yet inserted, even sequences insert customer `sequence // 2` and odd ones update a customer
    already inserted; afterwards every row is an update. So a restart (sequences continue) never
    re-inserts anyone. Every row carries the full record, as SCD1/SCD2 merges expect.
    """

    def __init__(self, seed: int, rng: SmallRng, customers: int) -> None:
        self.seed = seed
        self.rng = rng
        self.customers = customers
        self.records: dict[int, dict[str, str]] = {}

    def _initial(self, index: int) -> dict[str, str]:
        rng = producer_rng(self.seed, customer_id(index))
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        return {
            "NAME": f"{first} {last}",
            "EMAIL": f"{first}.{last}{index + 1}@{rng.choice(EMAIL_DOMAINS)}".lower(),
            "CITY": rng.choice(CITIES),
            "TIER": rng.weighted(TIERS, (0.6, 0.25, 0.12, 0.03)),
        }

    def _changed(self, index: int) -> dict[str, str]:
        rng = self.rng
        record = dict(self.records.get(index) or self._initial(index))
        change = rng.choice(("CITY", "TIER", "EMAIL", "CITY_AND_TIER"))
        if change in ("CITY", "CITY_AND_TIER"):
            record["CITY"] = rng.choice([c for c in CITIES if c != record["CITY"]])
        if change in ("TIER", "CITY_AND_TIER"):
            record["TIER"] = rng.choice([t for t in TIERS if t != record["TIER"]])
        if change == "EMAIL":
            local, domain = record["EMAIL"].split("@")
            record["EMAIL"] = f"{local}@{rng.choice([d for d in EMAIL_DOMAINS if d != domain])}"
        return record

    def row(self, event_id: str, at: datetime, sequence: int) -> Row:
        """The next insert or update."""
        inserting = sequence % 2 == 0 and sequence // 2 < self.customers
        if inserting:
            index, op = sequence // 2, "insert"
            record = self._initial(index)
        else:
            inserted = min((sequence + 1) // 2, self.customers)
            index, op = self.rng.randrange(inserted), "update"
            record = self._changed(index)
        self.records[index] = record
        stamp = timestamp(at)
        return with_payload(
            {
                "EVENT_ID": event_id,
                "EVENT_TIMESTAMP": stamp,
                "CUSTOMER_ID": customer_id(index),
                "OP": op,
                **record,
                "UPDATED_AT": stamp,
            }
        )
