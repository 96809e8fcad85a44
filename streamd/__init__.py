"""streamd: live events into Snowflake within seconds, exactly once."""

__version__ = "0.1.0"
