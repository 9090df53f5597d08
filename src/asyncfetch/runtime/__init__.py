"""The process around a run: event loop choice, garbage-collector tuning."""
