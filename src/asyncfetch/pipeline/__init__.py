"""The run loop: runner, executor, hand-off to the writer, stores, statistics."""
