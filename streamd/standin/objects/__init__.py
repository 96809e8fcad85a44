"""Snowflake objects DuckDB lacks: streams, tasks, dynamic tables, stages, warehouses, SHOW."""
