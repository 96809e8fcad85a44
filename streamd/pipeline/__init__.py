"""Pipeline: router, bounded lanes and the batcher."""
