"""``masked``: what the dashboard, the steps and the service may show of a URI (issue #30, 4).
The cases tests/unit/test_settings.py already holds are not repeated here."""

from __future__ import annotations

import pytest

from churn_transform.settings import masked


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        # a password holding "@": urllib's user part ends at the authority's last "@"
        ("http://admin:p@ssW0rd@host", "http://admin:***@host"),
        ("http://admin:a@b@c@host:5000/api?x=1", "http://admin:***@host:5000/api?x=1"),
        ("redis://:s3cr@t@cache:6379/0", "redis://:***@cache:6379/0"),
        # a token written as the URL's user part
        ("https://ghp_0123456789abcdef@github.com/org/repo", "https://***@github.com/org/repo"),
        ("https://glpat-XYZ:@gitlab.example/x", "https://glpat-XYZ:***@gitlab.example/x"),
        # an "@" after the authority belongs to the path: nothing to mask
        ("s3://bucket/key@v1/file", "s3://bucket/key@v1/file"),
        ("http://[::1]:5000/api", "http://[::1]:5000/api"),
    ],
)
def test_the_whole_user_part_of_a_uri_is_masked(uri: str, shown: str) -> None:
    assert masked(uri) == shown


@pytest.mark.parametrize(
    "message",
    [
        "no champion in the registry at http://admin:p@ssW0rd@127.0.0.1:5000 (refused)",
        "the service at 'https://p@ssW0rd@svc:3000' does not answer",
        "(http://admin:p@ssW0rd@h:1)",
        "a malformed one: http://admin:p@ssW0rd@[::1/x",
    ],
)
def test_no_part_of_a_password_holding_an_at_sign_reaches_a_message(message: str) -> None:
    shown = masked(message)
    assert "ssW0rd" not in shown and "p@" not in shown.replace("http", "")


def test_text_without_a_uri_is_left_as_it_is() -> None:
    text = "mail admin@example.com: 3 of 41 features drifted (share 0.07)"
    assert masked(text) == text
