"""The NDJSON file source: globs followed across rotation, positions saved per file."""
