"""Classic Snowpipe in the stand-in: pipes, the loader, staged files, load history."""
