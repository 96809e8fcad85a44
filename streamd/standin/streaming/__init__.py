"""Snowpipe Streaming in the stand-in: channels, row parsing, group commit, tokens, limits."""
