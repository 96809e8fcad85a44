"""Synthetic sources: manufacturing and retail generators, their schedule, ids and random numbers."""
