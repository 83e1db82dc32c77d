"""Entry point ``rollback``: the champion alias back to the previous champion, or to a named one.

Reads: the registry's versions of ``Settings.model_name`` and their champion history (tags kept
by the promotion gate and by earlier rollbacks: ``churn_transform.modelling.rollback``).
Produces: the alias moved; the tags ``rolled_back_*`` on the version it left and ``restored_*``
on the one it names again (when, who, why, and the other version); the same on this step's run.
A running service follows the alias by itself; ``make rollback`` then imports the restored
champion into BentoML's store, so a Bento built afterwards holds it too.

``--version none`` rolls back to the previous champion: a second rollback walks further back,
past every version already rolled back from, and is refused once none is left. ``--user none``
is the operating system's user. A reason is required (``none`` is refused).
"""

from __future__ import annotations

import argparse
import getpass
import re

import mlflow

from churn_transform.modelling.rollback import RollbackRefused, rollback
from steps._cli import optional, start, tracked_run

_VERSION = re.compile(r"[1-9][0-9]*")
_USER = re.compile(r"[\w.@+ -]{1,100}")


def version(value: str) -> str:
    """argparse type of a registry version number."""
    if not _VERSION.fullmatch(value):
        raise argparse.ArgumentTypeError(f"expected a version number like 3, got {value!r}")
    return value


def user(value: str) -> str:
    """argparse type of who rolls back: a name (letters, digits, ``.@+-_`` and spaces), or
    ``none`` for the operating system's user."""
    if value.lower() == "none":
        return getpass.getuser()
    if not _USER.fullmatch(value) or not value.strip():
        raise argparse.ArgumentTypeError(
            f"expected a user name (letters, digits, .@+-_ and spaces), got {value!r}"
        )
    return value.strip()


def reason(value: str) -> str:
    """argparse type of why: any text but blank or ``none`` (MLproject's "not given")."""
    if not value.strip() or value.strip().lower() == "none":
        raise argparse.ArgumentTypeError(
            f'a rollback needs a reason: make rollback REASON="why", got {value!r}'
        )
    return value.strip()


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", required=True, type=optional(version))
    parser.add_argument("--user", required=True, type=user)
    parser.add_argument("--reason", required=True, type=reason)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    settings = start("rollback")
    args = _arguments(argv)
    with tracked_run(settings, "rollback"):
        try:
            done = rollback(settings, args.version, args.user, args.reason)
        except RollbackRefused as refused:
            raise SystemExit(f"rollback: {refused}") from None
        mlflow.set_tags(
            {
                "rolled_back_from": done.left,
                "rolled_back_to": done.restored,
                "rolled_back_by": done.by,
                "rolled_back_reason": done.reason,
                "rolled_back_at": done.at,
            }
        )
    print(f"rollback: {done.text()}")


if __name__ == "__main__":
    main()
