"""The HTTP push source: NDJSON or JSON bodies, answered once spooled."""
