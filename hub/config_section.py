"""What a config section is made of: the core's, a backend's and a protocol's.

A section forbids unknown keys and validates strictly (TOML and YAML values
carry their type: ``port = "8800"`` is a mistake, not something to coerce; an
integer is accepted where a number is expected). This module imports nothing of
the hub's server, so a backend or a protocol (plug-ins included) defines its
own section from these pieces without loading it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """A table of the config file: unknown keys and loose types are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def with_base_dir(self, base: Path) -> Self:
        """This section with its file paths relative to ``base`` (the config file's folder).

        A section whose paths are meant that way overrides it; the default keeps
        the section as written.
        """
        return self


# A file path: a string in the file (strict mode would want a Path object).
# Relative paths are resolved against the config file's folder at load.
FilePath = Annotated[Path, Field(strict=False)]


ClaimValue = str | int | float | bool


class AccessRule(Section):
    """Who may do one thing. The empty rule admits everyone, anonymous included.

    All conditions given must hold.
    """

    # Only sessions with an identity (handshake or protocol login).
    authenticated: bool = False
    # Only these user ids.
    users: list[str] = []
    # Every claim named must match: a scalar must equal the claim; a list names
    # the accepted values. A claim that is itself a list (roles = ["a", "b"])
    # matches when it holds any accepted value.
    claims: dict[str, ClaimValue | list[ClaimValue]] = {}
