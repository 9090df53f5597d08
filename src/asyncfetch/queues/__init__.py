"""Work queues: where workers take requests from (in-process or Redis Streams)."""
