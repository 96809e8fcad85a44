"""The reconciler: checks the Snowflake side of every pipeline on a schedule and reports findings.

`report.py` (Finding, HealthReport), `checks.py` and `checks_tables.py` (one function per concern),
`freshness.py` (end-to-end freshness), `loop.py` (the schedule and what a cycle publishes),
`config.py` (the `[reconciler]` section). Kept import-free: `streamd.config.model` imports `config.py`.
"""
