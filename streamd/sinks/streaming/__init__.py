"""Snowpipe Streaming delivery: a writer per channel, the commit tracker, request pacing."""
