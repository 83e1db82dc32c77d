"""Keys that would open the service to anyone are refused at start, guessing keys is slowed per
client address, and a host name is judged by the addresses it resolves to."""

from __future__ import annotations

import hashlib

import pytest
from starlette.testclient import TestClient

from churn_transform.serving import access
from churn_transform.serving.access import KeyConfigError, KeyRing, RequireKeys, refuse_open_bind

DIGEST = hashlib.sha256(b"alice-secret-key").hexdigest()


async def _ok(scope: dict, receive: object, send: object) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]


@pytest.mark.parametrize("entry", ["alice:", "alice: ", ":", f"alice:{DIGEST},bob:"])
def test_an_entry_with_an_empty_key_or_digest_is_refused_naming_it(entry: str) -> None:
    with pytest.raises(KeyConfigError, match="has no key or digest"):
        KeyRing.load(entry, None)


def test_the_refusal_names_the_entry_but_not_the_other_keys() -> None:
    with pytest.raises(KeyConfigError, match="'bob'") as refused:
        KeyRing.load(f"alice:{DIGEST},bob:", None)
    assert DIGEST not in str(refused.value)


def test_an_empty_key_header_is_a_missing_key_not_a_key() -> None:
    client = TestClient(RequireKeys(_ok, keys=KeyRing.load(f"alice:{DIGEST}", None)))
    answer = client.post("/predict", headers={"X-API-Key": ""})
    assert answer.status_code == 401 and answer.json() == {"error": access.MISSING}


def test_wrong_keys_are_limited_per_client_address_and_the_right_key_waits_too() -> None:
    keyed = RequireKeys(_ok, keys=KeyRing.load(f"alice:{DIGEST}", None), guess_burst=3)
    client = TestClient(keyed)
    wrong = [client.post("/predict", headers={"X-API-Key": f"guess-{i}"}) for i in range(5)]
    assert [a.status_code for a in wrong] == [401, 401, 401, 429, 429]
    assert int(wrong[-1].headers["Retry-After"]) >= 1
    # while the address waits, its key is not even looked at: a guess that was right is not told
    right = client.post("/predict", headers={"X-API-Key": "alice-secret-key"})
    assert right.status_code == 429
    # another address is not held back by the first one's guesses
    other = TestClient(keyed, client=("10.9.8.7", 50000))
    assert other.post("/predict", headers={"X-API-Key": "alice-secret-key"}).status_code == 200


def test_missing_keys_do_not_count_as_guesses() -> None:
    client = TestClient(RequireKeys(_ok, keys=KeyRing.load(f"alice:{DIGEST}", None), guess_burst=2))
    assert {client.post("/predict").status_code for _ in range(10)} == {401}
    assert client.post("/predict", headers={"X-API-Key": "alice-secret-key"}).status_code == 200


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1"])
def test_a_loopback_name_or_address_serves_without_a_key(host: str) -> None:
    refuse_open_bind(KeyRing(), host)


@pytest.mark.parametrize("host", ["0.0.0.0", "no-such-host.invalid"])
def test_a_network_address_or_an_unresolvable_name_needs_a_key(host: str) -> None:
    with pytest.raises(SystemExit, match=f"Refusing to serve {host}"):
        refuse_open_bind(KeyRing(), host)


def test_a_request_s_key_name_is_known_while_it_is_handled_and_only_then() -> None:
    from churn_transform.serving.runtime import CLIENT

    seen: list[str | None] = []

    async def app(scope: dict, receive: object, send: object) -> None:
        seen.append(CLIENT.get())
        await _ok(scope, receive, send)

    client = TestClient(RequireKeys(app, keys=KeyRing.load(f"alice:{DIGEST}", None)))
    assert client.post("/predict", headers={"X-API-Key": "alice-secret-key"}).status_code == 200
    assert seen == ["alice"] and CLIENT.get() is None
