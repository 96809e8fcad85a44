-- Raw landing tables written by streamd through Snowpipe Streaming (default pipes <TABLE>-STREAMING).
-- Typed columns for querying, plus the whole event as RAW_PAYLOAD for replay and schema drift.
-- Products (SKU-00001…) and customers (CUST-000001…) are shared by all four tables, so they join.

CREATE TABLE IF NOT EXISTS RETAIL_DEMO.RAW_DATA.POS_TRANSACTIONS_RAW (
    EVENT_ID          VARCHAR(128)   NOT NULL,
    EVENT_TIMESTAMP   TIMESTAMP_NTZ  NOT NULL,
    TRANSACTION_ID    VARCHAR(96)    NOT NULL,
    STORE_ID          VARCHAR(32)    NOT NULL,
    CUSTOMER_ID       VARCHAR(32),
    LINE_ITEMS        VARIANT        NOT NULL,
    ITEM_COUNT        NUMBER(6, 0),
    TOTAL_AMOUNT      NUMBER(12, 2)  NOT NULL,
    PAYMENT_METHOD    VARCHAR(32),
    RAW_PAYLOAD       VARIANT
)
CLUSTER BY (STORE_ID, TO_DATE(EVENT_TIMESTAMP))
COMMENT = 'POS transactions: basket of line items {product_id, quantity, unit_price}, total, payment';

CREATE TABLE IF NOT EXISTS RETAIL_DEMO.RAW_DATA.CLICKSTREAM_RAW (
    EVENT_ID          VARCHAR(128)   NOT NULL,
    EVENT_TIMESTAMP   TIMESTAMP_NTZ  NOT NULL,
    SESSION_ID        VARCHAR(96)    NOT NULL,
    CUSTOMER_ID       VARCHAR(32),
    PAGE              VARCHAR(256)   NOT NULL,
    EVENT_TYPE        VARCHAR(32)    NOT NULL,
    FUNNEL_STEP       NUMBER(2, 0)   NOT NULL,
    PRODUCT_ID        VARCHAR(32),
    DEVICE            VARCHAR(16),
    RAW_PAYLOAD       VARIANT
)
CLUSTER BY (TO_DATE(EVENT_TIMESTAMP), SESSION_ID)
COMMENT = 'Web clickstream: sessions walking home > category > product > cart > checkout, with drop-off';

CREATE TABLE IF NOT EXISTS RETAIL_DEMO.RAW_DATA.ECOMMERCE_EVENTS_RAW (
    EVENT_ID          VARCHAR(128)   NOT NULL,
    EVENT_TIMESTAMP   TIMESTAMP_NTZ  NOT NULL,
    EVENT_TYPE        VARCHAR(32)    NOT NULL,
    PRODUCT_ID        VARCHAR(32)    NOT NULL,
    CATEGORY          VARCHAR(32),
    CUSTOMER_ID       VARCHAR(32)    NOT NULL,
    PRICE             NUMBER(10, 2)  NOT NULL,
    QUANTITY          NUMBER(6, 0)   NOT NULL,
    ORDER_ID          VARCHAR(96),
    RAW_PAYLOAD       VARIANT
)
CLUSTER BY (TO_DATE(EVENT_TIMESTAMP), EVENT_TYPE)
COMMENT = 'E-commerce events (view, add_to_cart, purchase) over the product and customer dimensions';

CREATE TABLE IF NOT EXISTS RETAIL_DEMO.RAW_DATA.CUSTOMER_CHANGES_RAW (
    EVENT_ID          VARCHAR(128)   NOT NULL,
    EVENT_TIMESTAMP   TIMESTAMP_NTZ  NOT NULL,
    CUSTOMER_ID       VARCHAR(32)    NOT NULL,
    OP                VARCHAR(8)     NOT NULL,
    NAME              VARCHAR(128),
    EMAIL             VARCHAR(256),
    CITY              VARCHAR(64),
    TIER              VARCHAR(16),
    UPDATED_AT        TIMESTAMP_NTZ  NOT NULL,
    RAW_PAYLOAD       VARIANT
)
CLUSTER BY (CUSTOMER_ID)
COMMENT = 'Customer CDC feed: each customer inserted once, then updated (full records; SCD1/SCD2 input)';
