"""Sources: producers of rows. They know nothing of Snowflake."""
