"""One bound on every request body, whichever way it arrives (Content-Length, chunked,
multipart, the page's upload endpoint), enforced while it streams, and a deadline for
clients that send it too slowly. A pure ASGI middleware around the whole service."""

from __future__ import annotations

import asyncio
import json
from typing import Any


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


class BodyLimit:
    """Refuse (413) a body over ``max_bytes`` as soon as it is, and (408) a body whose next
    chunk takes longer than ``read_timeout`` seconds to arrive."""

    def __init__(self, app: Any, max_bytes: int, read_timeout: float = 30.0) -> None:
        self.app, self.max_bytes, self.read_timeout = app, max_bytes, read_timeout

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(
                send, 413, f"the upload is {int(declared)} bytes; the limit is {self.max_bytes}"
            )
            return
        seen, started = 0, False

        async def limited_receive() -> dict:
            nonlocal seen
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout)
            except asyncio.TimeoutError:
                raise _TooSlow from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracked_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except (_TooLarge, _TooSlow) as exc:
            if started:  # the answer is already on its way: nothing more can be said
                return
            if isinstance(exc, _TooLarge):
                await self._refuse(send, 413, f"the upload is over the limit of {self.max_bytes} bytes")
            else:
                await self._refuse(
                    send, 408, f"the upload stalled for {self.read_timeout:g} s; send it faster"
                )

    @staticmethod
    async def _refuse(send: Any, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]  # fmt: skip
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
