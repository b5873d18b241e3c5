"""``events``: server-sent events: run, endpoint and schedule changes pushed as they happen."""

from __future__ import annotations

import asyncio
import contextlib

import tornado.web
from jupyter_server.auth.decorator import authorized
from tornado.iostream import StreamClosedError

from ..openapi import api
from .base import MLPlatHandler

#: A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE = 15.0
#: How long a client waits before reconnecting when the stream drops (ms).
RETRY_MS = 3000


class EventsHandler(MLPlatHandler):
    """One long-lived response per client; the hub's watcher fills its queue."""

    _queue: asyncio.Queue | None = None

    @api("Server-sent events: `event: run` with a DescribeRun whenever one of the owner's runs "
         "or steps changes state, `event: endpoint` with a DescribeEndpoint on endpoint "
         "changes, `event: schedule` with a DescribeSchedule when a schedule or its last "
         "firing changes; a comment line every 15 s keeps the stream open",
         content_type="text/event-stream")
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        services = await self.services()
        hub = services.events
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        queue = self._queue = hub.subscribe()
        try:
            self.write(f"retry: {RETRY_MS}\n: connected\n\n")
            await self.flush()
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    self.write(": keepalive\n\n")
                else:
                    if event is None:  # the server is stopping, or the client is gone
                        break
                    self.write(event.encode())
                await self.flush()
        except StreamClosedError:
            return
        finally:
            hub.unsubscribe(queue)
        with contextlib.suppress(StreamClosedError):
            self.finish(set_content_type="text/event-stream")

    def on_connection_close(self) -> None:
        if self._queue is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)
        super().on_connection_close()
