"""Config validation errors as one readable paragraph: file, key path, what was expected.

TOML (and YAML) values carry their type, so the models validate strictly; this
module turns pydantic's errors into the words of the file: ``server.port:
expected an integer, got the string "8800"``, ``rpc.modules[0]``, and for an
unknown key the closest valid one (``did you mean `port`?``).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

# What a type error expected, in TOML's words.
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "path_type": "a path (string)",
}
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def describe(source: str, exc: ValidationError, root: type[BaseModel]) -> str:
    """One line for the file, then one per key path with its problem."""
    problems: dict[str, _Problem] = {}
    for error in exc.errors():
        path, model, union_member = _walk(root, error["loc"])
        shown = _render_path(path)
        problem = problems.setdefault(shown, _Problem(shown, hidden=_is_secret(path)))
        problem.add(error, model, union_member)
    lines = [f"{source}: {len(problems)} problem(s) in the configuration:"]
    lines.extend(f"  {problem.render()}" for problem in problems.values())
    return "\n".join(lines)


class _Problem:
    """The errors of one key path (a union reports one error per member)."""

    def __init__(self, path: str, *, hidden: bool) -> None:
        self.path = path
        self.hidden = hidden
        self.expected: list[str] = []
        self.messages: list[str] = []
        self.got: Any = None
        self.has_input = False

    def add(self, error: Any, model: type[BaseModel] | None, union_member: bool) -> None:
        kind = error["type"]
        if kind == "extra_forbidden":
            self.messages.append(_unknown_key(str(error["loc"][-1]), model))
            return
        if kind == "missing":
            self.messages.append("required key is missing")
            return
        expected = _EXPECTED.get(kind)
        if expected is not None:
            if expected not in self.expected:
                self.expected.append(expected)
        elif not union_member or _reword(error["msg"]) not in self.messages:
            self.messages.append(_reword(error["msg"]))
        if "input" in error and not self.has_input:
            self.got, self.has_input = error["input"], True

    def render(self) -> str:
        parts = list(self.messages)
        if self.expected:
            text = f"expected {_one_of(self.expected)}"
            if self.has_input and not self.hidden:
                text += f", got {_toml_value(self.got)}"
                if _quoted_number(self.got) and {"an integer", "a number"} & set(self.expected):
                    text += " (write it without quotes)"
            parts.insert(0, text)
        elif self.has_input and not self.hidden and parts:
            parts[-1] += f" (got {_toml_value(self.got)})"
        return f"{self.path}: " + "; ".join(parts)


def _walk(root: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[list[int | str], Any, bool]:
    """The key path as written in the file, the model holding its last key, and
    whether a union member's tag was dropped from ``loc``."""
    annotation: Any = root
    parent: type[BaseModel] | None = None
    path: list[int | str] = []
    union_member = False
    for part in loc:
        annotation = _strip_optional(annotation)
        origin = get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            parent = annotation
            field = annotation.model_fields.get(str(part))
            annotation = field.annotation if field is not None else None
            path.append(part)
        elif origin is list:
            annotation = get_args(annotation)[0]
            path.append(part)
        elif origin is dict:
            annotation = get_args(annotation)[1]
            path.append(part)
        elif origin in (Union, types.UnionType):
            # pydantic tags each member's error with the member's name: not a key.
            union_member = True
            annotation = None
        else:
            annotation = None
            path.append(part)
    return path, parent, union_member


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _render_path(path: list[int | str]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else json.dumps(part)
            text += f".{key}" if text else key
    return text or "(top level)"


def _is_secret(path: list[int | str]) -> bool:
    # [auth] values are secrets and password hashes, WAMP-CRA users hold
    # secrets, [api] keys are keys: never echo them.
    return bool(path) and (
        path[0] == "auth"
        or "wampcra_users" in path
        or "secret" in path
        or path[:2] == ["api", "keys"]
        or path[:2] == ["webhooks", "secret"]
    )


def _unknown_key(key: str, model: type[BaseModel] | None) -> str:
    valid = list(model.model_fields) if model is not None else []
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean `{close[0]}`?"
    if valid:
        return f"unknown key; valid keys here: {', '.join(valid)}"
    return "unknown key (check its spelling and section)"


def _reword(message: str) -> str:
    # pydantic's "Input should be ..." reads as "expected ..." in a config file.
    if message.startswith("Input should be "):
        rest = message.removeprefix("Input should be ")
        if rest.startswith(("less ", "greater ")):
            rest = f"a value {rest}"
        return f"expected {rest}"
    if message.startswith("Value error, "):
        return message.removeprefix("Value error, ")
    return message


def _one_of(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _toml_value(value: Any) -> str:
    """A value as the user wrote it, with its TOML type."""
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, str):
        return f"the string {json.dumps(value)}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the float {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return repr(value)


def _quoted_number(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def module_load_error(index: int, module_name: str, exc: BaseException) -> str:
    """Why ``rpc.modules[index]`` could not be loaded, and where it was looked for."""
    key = f"rpc.modules[{index}] = {json.dumps(module_name)}"
    missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
    if missing and (module_name == missing or module_name.startswith(f"{missing}.")):
        roots = [_root(entry) for entry in sys.path]
        return (
            f"{key}: no module {missing!r} under the import roots tried "
            f"(rpc.paths first, relative to the config file, then the interpreter's path): "
            f"{', '.join(roots)}"
        )
    # Found, but importing it (or its setup(hub)) failed: say how, without a traceback.
    return f"{key}: loading it failed: {type(exc).__name__}: {exc}"


def _root(entry: str) -> str:
    entry = entry or os.getcwd()
    return entry if os.path.exists(entry) else f"{entry} (does not exist)"
