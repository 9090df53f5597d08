"""One Lua script's calls from one event-loop turn, sent to Redis in one round trip.

Imports redis, as only the ``queues/redis/`` package may (see ``jobs.py``).

Every request a worker starts reserves its slot in the shared limits (``rate.py``,
``host_limits.py``): one script call each. Sent one by one, they made a round trip per
request and capped a worker well below ``fetch``. The dispatcher starts many requests in
one turn of the event loop, so calls made in the same turn are queued and sent together
in one pipeline (not a transaction: each call is still its own atomic script run, in the
order made, so the shared meters hand out slots first come, first served as before).
Each caller gets its own reply or its own error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from .jobs import Redis

_Call = tuple[Sequence[str], Sequence[Any], "asyncio.Future[Any]"]


class BatchedScript:
    """Call a registered Lua script; concurrent calls share round trips."""

    def __init__(self, client: Redis, source: str) -> None:
        self._client = client
        self._source = source
        self._sha = client.register_script(source).sha
        self._queued: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        self._queued.append((keys, args, reply))
        if len(self._queued) == 1:  # the first call of this turn sends the turn's batch
            loop.call_soon(self._send_queued)
        return await reply

    def _send_queued(self) -> None:
        batch, self._queued = self._queued, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Call]) -> None:
        try:
            replies = await self._execute(batch)
        except asyncio.CancelledError:  # the worker is stopping: no caller waits forever
            for _keys, _args, reply in batch:
                reply.cancel()
            raise
        except Exception as error:  # the round trip failed: every caller sees why
            replies = [error] * len(batch)
        for (_keys, _args, reply), value in zip(batch, replies, strict=True):
            if reply.done():  # its caller was cancelled meanwhile
                continue
            if isinstance(value, Exception):
                reply.set_exception(value)
            else:
                reply.set_result(value)

    async def _execute(self, batch: list[_Call]) -> list[Any]:
        replies = await self._pipelined(batch)
        missing = [n for n, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:  # a restarted Redis forgot the script: load it, send those calls again
            await self._client.script_load(self._source)
            again = await self._pipelined([batch[n] for n in missing])
            for n, reply in zip(missing, again, strict=True):
                replies[n] = reply
        return replies

    async def _pipelined(self, batch: list[_Call]) -> list[Any]:
        # EVALSHA by hand: a pipeline given the Script object asks SCRIPT EXISTS first,
        # a second command for every batch.
        async with self._client.pipeline(transaction=False) as pipe:
            for keys, args, _reply in batch:
                pipe.evalsha(self._sha, len(keys), *keys, *args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies
