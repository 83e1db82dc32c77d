"""Clients that send headers and stall their bodies: each is answered 408 after the body timeout,
only so many may wait at once, and none holds a slot that a ready request needs."""

from __future__ import annotations

import asyncio

from churn_transform.serving.guards import GuardRequests

SCOPE = {
    "type": "http",
    "method": "POST",
    "path": "/predict",
    "headers": [(b"content-type", b"application/json")],
}


async def _echo(scope: dict, receive: object, send: object) -> None:
    body = (await receive())["body"]  # type: ignore[operator]
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": body})  # type: ignore[operator]


async def _stalled() -> dict:
    await asyncio.sleep(3600)  # headers sent, the body never comes
    raise AssertionError("unreachable")


async def _ready() -> dict:
    return {"type": "http.request", "body": b"{}", "more_body": False}


async def _request(guard: GuardRequests, receive: object) -> list[dict]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await guard(dict(SCOPE), receive, send)
    return sent


def test_a_stalled_body_is_answered_408_after_the_timeout() -> None:
    guard = GuardRequests(_echo, max_body_bytes=4096, max_concurrency=4, body_timeout=0.1)
    sent = asyncio.run(_request(guard, _stalled))
    assert sent[0]["status"] == 408 and b"did not arrive within 0.1 s" in sent[1]["body"]
    assert (b"connection", b"close") in sent[0]["headers"]
    assert guard.waiting == 0 and guard.in_flight == 0


def test_only_so_many_requests_may_wait_for_their_body() -> None:
    guard = GuardRequests(
        _echo, max_body_bytes=4096, max_concurrency=2, body_timeout=5.0, max_waiting=8
    )

    async def scene() -> list[dict]:
        stalled = [asyncio.create_task(_request(guard, _stalled)) for _ in range(8)]
        await asyncio.sleep(0.05)
        assert guard.waiting == 8 and guard.in_flight == 0
        beyond = await asyncio.wait_for(_request(guard, _stalled), 1.0)  # refused at once
        for task in stalled:
            task.cancel()
        return beyond

    beyond = asyncio.run(scene())
    assert beyond[0]["status"] == 503 and (b"retry-after", b"1") in beyond[0]["headers"]


def test_a_ready_request_is_served_while_others_stall() -> None:
    guard = GuardRequests(
        _echo, max_body_bytes=4096, max_concurrency=2, body_timeout=5.0, max_waiting=16
    )

    async def scene() -> list[list[dict]]:
        stalled = [asyncio.create_task(_request(guard, _stalled)) for _ in range(8)]
        await asyncio.sleep(0.05)
        served = await asyncio.wait_for(
            asyncio.gather(*[_request(guard, _ready) for _ in range(4)]), 1.0
        )
        for task in stalled:
            task.cancel()
        return list(served)

    served = asyncio.run(scene())
    assert [sent[0]["status"] for sent in served] == [200] * 4


def test_one_client_address_may_keep_only_so_many_bodies_waiting() -> None:
    guard = GuardRequests(
        _echo, max_body_bytes=4096, max_concurrency=2, body_timeout=5.0, waiting_per_client=4
    )

    async def request(address: str, receive: object) -> list[dict]:
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        await guard({**SCOPE, "client": (address, 5000)}, receive, send)
        return sent

    async def scene() -> tuple[list[dict], list[dict]]:
        stalled = [asyncio.create_task(request("10.0.0.9", _stalled)) for _ in range(4)]
        await asyncio.sleep(0.05)
        fifth = await asyncio.wait_for(request("10.0.0.9", _stalled), 1.0)  # refused at once
        other = await asyncio.wait_for(request("10.0.0.1", _ready), 1.0)
        for task in stalled:
            task.cancel()
        return fifth, other

    fifth, other = asyncio.run(scene())
    assert fifth[0]["status"] == 503 and other[0]["status"] == 200
    assert guard.waiting_by_client == {}
