"""Transports send one HTTP hop. ``base`` holds the protocol; engines live beside it."""
