"""The stand-in's SQL engine: statement text, dispatch, the default DuckDB path, result values."""
