"""How data leaves the stand-in: Iceberg tables and Parquet unloads."""
