"""DuckDB storage: one file per database, the DDL loader, the hidden object catalog."""
