"""Sinks: deliver batches to Snowflake."""
