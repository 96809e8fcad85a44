"""Protocol clients for Snowflake's HTTP APIs; they know nothing of sources."""
