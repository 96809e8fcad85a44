"""Classic Snowpipe delivery: gzip files staged and submitted, manifests, load confirmation, backfill."""
