"""The base of every config section: the core's, a backend's and a protocol's.

A section forbids unknown keys and validates strictly (TOML and YAML values
carry their type: ``port = "8800"`` is a mistake, not something to coerce; an
integer is accepted where a number is expected). It imports nothing of the hub,
so a backend or a protocol (plug-ins included) can define its own section
without loading the server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """A table of the config file: unknown keys and loose types are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# A file path: a string in the file (strict mode would want a Path object).
# Relative paths are resolved against the config file's folder at load.
FilePath = Annotated[Path, Field(strict=False)]
