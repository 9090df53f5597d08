"""Distributed jobs on Redis Streams."""
