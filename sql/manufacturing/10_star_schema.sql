-- Star schema over the raw landing tables (schema ANALYTICS).
-- Dimensions are keyed by the business ids the generators emit (EQ-0001, LINE-01, PRD-001), so a
-- fact row joins its dimensions without a surrogate-key lookup; TIME_KEY is YYYYMMDDHHMI.
-- Facts carry the alert flags computed in flight by the load tasks (13_transform_tasks.sql).

CREATE TABLE IF NOT EXISTS MANUFACTURING_DEMO.ANALYTICS.DIM_EQUIPMENT_TYPE (
    EQUIPMENT_TYPE        VARCHAR(64)   NOT NULL,
    NOMINAL_TEMPERATURE   FLOAT,
    NOMINAL_PRESSURE      FLOAT,
    NOMINAL_VIBRATION     FLOAT,
    NOMINAL_SPEED         FLOAT,
    MAX_TEMPERATURE       FLOAT,
    MAX_PRESSURE          FLOAT,
    MAX_VIBRATION         FLOAT
)
COMMENT = 'Operating envelope per machine type; the sensor load flags readings outside it';

-- Nominal values as in streamd/sources/synthetic/manufacturing_models.py; limits at +25 % temperature,
-- +30 % pressure and 2x vibration. MERGE keeps the seed idempotent.
MERGE INTO MANUFACTURING_DEMO.ANALYTICS.DIM_EQUIPMENT_TYPE t
USING (
    SELECT * FROM (VALUES
        ('CNC_MACHINE', 42.0, 6.0, 2.2, 2400.0),
        ('CONVEYOR', 31.0, 1.2, 1.1, 45.0),
        ('ROBOTIC_ARM', 36.0, 5.5, 0.7, 90.0),
        ('PRESS', 48.0, 160.0, 3.5, 28.0),
        ('INJECTION_MOLDER', 215.0, 110.0, 1.4, 35.0),
        ('WELDING_ROBOT', 65.0, 4.0, 0.9, 60.0),
        ('PACKAGING_MACHINE', 29.0, 3.0, 1.6, 120.0)
    ) AS v (EQUIPMENT_TYPE, T, P, V, S)
) s
ON t.EQUIPMENT_TYPE = s.EQUIPMENT_TYPE
WHEN MATCHED THEN UPDATE SET
    NOMINAL_TEMPERATURE = s.T, NOMINAL_PRESSURE = s.P, NOMINAL_VIBRATION = s.V,
    NOMINAL_SPEED = s.S, MAX_TEMPERATURE = s.T * 1.25, MAX_PRESSURE = s.P * 1.3,
    MAX_VIBRATION = s.V * 2
WHEN NOT MATCHED THEN INSERT (
    EQUIPMENT_TYPE, NOMINAL_TEMPERATURE, NOMINAL_PRESSURE, NOMINAL_VIBRATION, NOMINAL_SPEED,
    MAX_TEMPERATURE, MAX_PRESSURE, MAX_VIBRATION
) VALUES (s.EQUIPMENT_TYPE, s.T, s.P, s.V, s.S, s.T * 1.25, s.P * 1.3, s.V * 2);

CREATE TABLE IF NOT EXISTS MANUFACTURING_DEMO.ANALYTICS.DIM_EQUIPMENT (
    EQUIPMENT_ID      VARCHAR(32)    NOT NULL,
    EQUIPMENT_NAME    VARCHAR(64),
    EQUIPMENT_TYPE    VARCHAR(64),
    LINE_ID           VARCHAR(32),
    FIRST_SEEN        TIMESTAMP_NTZ,
    LAST_SEEN         TIMESTAMP_NTZ
)
COMMENT = 'Equipment master data, maintained from the sensor facts';

CREATE TABLE IF NOT EXISTS MANUFACTURING_DEMO.ANALYTICS.DIM_PRODUCTION_LINE (
    LINE_ID           VARCHAR(32)    NOT NULL,
    LINE_NAME         VARCHAR(64),
    FIRST_SEEN        TIMESTAMP_NTZ,
    LAST_SEEN         TIMESTAMP_NTZ
)
COMMENT = 'Production lines, maintained from the production facts';

CREATE TABLE IF NOT EXISTS MANUFACTURING_DEMO.ANALYTICS.DIM_PRODUCT (
    PRODUCT_ID        VARCHAR(32)    NOT NULL,
    PRODUCT_NAME      VARCHAR(64),
    FIRST_SEEN        TIMESTAMP_NTZ,
    LAST_SEEN         TIMESTAMP_NTZ
)
COMMENT = 'Products, maintained from the quality and production facts';

CREATE TABLE IF NOT EXISTS MANUFACTURING_DEMO.ANALYTICS.DIM_TIME (
    TIME_KEY          NUMBER(12, 0)  NOT NULL,
    MINUTE_START      TIMESTAMP_NTZ  NOT NULL,
    CALENDAR_DATE     DATE,
    HOUR_OF_DAY       NUMBER(2, 0),
    DAY_OF_WEEK       NUMBER(1, 0),
    IS_WEEKEND        BOOLEAN,
    SHIFT             VARCHAR(16)
)
COMMENT = 'One row per minute that has facts; shifts DAY 06-14, SWING 14-22, NIGHT 22-06';

CREATE TABLE IF NOT EXISTS MANUFACTURING_DEMO.ANALYTICS.FACT_SENSOR_READINGS (
    EVENT_ID          VARCHAR(128)   NOT NULL,
    EVENT_TIMESTAMP   TIMESTAMP_NTZ  NOT NULL,
    TIME_KEY          NUMBER(12, 0)  NOT NULL,
    EQUIPMENT_ID      VARCHAR(32)    NOT NULL,
    EQUIPMENT_TYPE    VARCHAR(64),
    LINE_ID           VARCHAR(32),
    TEMPERATURE       FLOAT,
    PRESSURE          FLOAT,
    VIBRATION         FLOAT,
    SPEED             FLOAT,
    STATUS            VARCHAR(32),
    IS_ANOMALY        BOOLEAN,
    TEMPERATURE_ALERT BOOLEAN,
    PRESSURE_ALERT    BOOLEAN,
    VIBRATION_ALERT   BOOLEAN,
    ALERT_LEVEL       VARCHAR(16),
    LOADED_AT         TIMESTAMP_NTZ
)
COMMENT = 'Sensor readings with alert flags against the equipment type envelope';

CREATE TABLE IF NOT EXISTS MANUFACTURING_DEMO.ANALYTICS.FACT_PRODUCTION (
    EVENT_ID            VARCHAR(128)   NOT NULL,
    EVENT_TIMESTAMP     TIMESTAMP_NTZ  NOT NULL,
    TIME_KEY            NUMBER(12, 0)  NOT NULL,
    LINE_ID             VARCHAR(32)    NOT NULL,
    PRODUCT_ID          VARCHAR(32),
    SHIFT               VARCHAR(16),
    UNITS_PRODUCED      NUMBER(10, 0),
    UNITS_TARGET        NUMBER(10, 0),
    EFFICIENCY_PERCENT  NUMBER(7, 2),
    CYCLE_TIME_SECONDS  FLOAT,
    DOWNTIME_MINUTES    FLOAT,
    DOWNTIME_REASON     VARCHAR(64),
    BELOW_TARGET_ALERT  BOOLEAN,
    DOWNTIME_ALERT      BOOLEAN,
    LOADED_AT           TIMESTAMP_NTZ
)
COMMENT = 'Production events with efficiency and below-target / downtime alert flags';

CREATE TABLE IF NOT EXISTS MANUFACTURING_DEMO.ANALYTICS.FACT_QUALITY (
    EVENT_ID          VARCHAR(128)   NOT NULL,
    EVENT_TIMESTAMP   TIMESTAMP_NTZ  NOT NULL,
    TIME_KEY          NUMBER(12, 0)  NOT NULL,
    PRODUCT_ID        VARCHAR(32)    NOT NULL,
    LINE_ID           VARCHAR(32),
    BATCH_ID          VARCHAR(64),
    TEST_TYPE         VARCHAR(64),
    MEASURED_VALUE    FLOAT,
    SPEC_LOWER        FLOAT,
    SPEC_UPPER        FLOAT,
    PASSED            BOOLEAN,
    DEFECT_TYPE       VARCHAR(64),
    QUALITY_ALERT     BOOLEAN,
    LOADED_AT         TIMESTAMP_NTZ
)
COMMENT = 'Quality tests; QUALITY_ALERT marks a failed test';
