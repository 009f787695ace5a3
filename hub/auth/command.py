"""``wshub hash-password``: an argon2id hash for ``[auth.basic]``, from a prompt or stdin."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from typing import TextIO

from hub.auth.passwords import hash_password


def hash_password_main(
    argv: Sequence[str], stdin: TextIO | None = None, stdout: TextIO | None = None
) -> int:
    parser = argparse.ArgumentParser(
        prog="wshub hash-password",
        description=(
            "Print an argon2id hash of a password, for [auth.basic] users or a users file "
            "('user:hash' lines). The password is read from a prompt on a terminal, "
            "else from the first line of stdin; it is never taken as an argument "
            "(it would land in the shell history and the process list)."
        ),
    )
    parser.parse_args(argv)
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    if stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("wshub: the passwords differ", file=sys.stderr)
            return 1
    else:
        password = stdin.readline().rstrip("\r\n")
    if not password:
        print("wshub: empty password", file=sys.stderr)
        return 1
    print(hash_password(password), file=stdout)
    return 0
