"""The local Snowflake stand-in: Snowflake's HTTP APIs on loopback over DuckDB storage."""
