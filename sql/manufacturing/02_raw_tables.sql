-- Raw landing tables written by streamd through Snowpipe Streaming (default pipes <TABLE>-STREAMING).
-- Typed columns for querying, plus the whole event as RAW_PAYLOAD for replay and schema drift.

CREATE TABLE IF NOT EXISTS MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW (
    EVENT_ID          VARCHAR(128)   NOT NULL,
    EVENT_TIMESTAMP   TIMESTAMP_NTZ  NOT NULL,
    EQUIPMENT_ID      VARCHAR(32)    NOT NULL,
    EQUIPMENT_TYPE    VARCHAR(64),
    LINE_ID           VARCHAR(32),
    TEMPERATURE       FLOAT,
    PRESSURE          FLOAT,
    VIBRATION         FLOAT,
    SPEED             FLOAT,
    STATUS            VARCHAR(32),
    IS_ANOMALY        BOOLEAN,
    RAW_PAYLOAD       VARIANT
)
CLUSTER BY (EQUIPMENT_ID, TO_DATE(EVENT_TIMESTAMP))
COMMENT = 'Equipment sensor readings: temperature, pressure, vibration, speed, status';

CREATE TABLE IF NOT EXISTS MANUFACTURING_DEMO.RAW_DATA.PRODUCTION_DATA_RAW (
    EVENT_ID          VARCHAR(128)   NOT NULL,
    EVENT_TIMESTAMP   TIMESTAMP_NTZ  NOT NULL,
    LINE_ID           VARCHAR(32)    NOT NULL,
    PRODUCT_ID        VARCHAR(32),
    SHIFT             VARCHAR(16),
    UNITS_PRODUCED    NUMBER(10, 0),
    UNITS_TARGET      NUMBER(10, 0),
    CYCLE_TIME_SECONDS FLOAT,
    DOWNTIME_MINUTES  FLOAT,
    DOWNTIME_REASON   VARCHAR(64),
    RAW_PAYLOAD       VARIANT
)
CLUSTER BY (LINE_ID, TO_DATE(EVENT_TIMESTAMP))
COMMENT = 'Production events per line: units produced, cycle time, downtime reasons, shift';

CREATE TABLE IF NOT EXISTS MANUFACTURING_DEMO.RAW_DATA.QUALITY_DATA_RAW (
    EVENT_ID          VARCHAR(128)   NOT NULL,
    EVENT_TIMESTAMP   TIMESTAMP_NTZ  NOT NULL,
    PRODUCT_ID        VARCHAR(32)    NOT NULL,
    LINE_ID           VARCHAR(32),
    BATCH_ID          VARCHAR(64),
    TEST_TYPE         VARCHAR(64),
    MEASURED_VALUE    FLOAT,
    SPEC_LOWER        FLOAT,
    SPEC_UPPER        FLOAT,
    PASSED            BOOLEAN,
    DEFECT_TYPE       VARCHAR(64),
    RAW_PAYLOAD       VARIANT
)
CLUSTER BY (PRODUCT_ID, TO_DATE(EVENT_TIMESTAMP))
COMMENT = 'Quality tests per product: measurement against spec limits, pass/fail, defect type';
