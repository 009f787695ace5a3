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
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

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
    for error in map(_tag_on_its_key, exc.errors()):
        where = _walk(root, error["loc"])
        if "tag_key" in error:
            where.path.append(error["tag_key"])
        shown = _render_path(where.path)
        problem = problems.setdefault(shown, _Problem(shown, hidden=_is_secret(where.path)))
        problem.add(error, where)
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

    def add(self, error: Any, where: _Where) -> None:
        kind = error["type"]
        if kind == "extra_forbidden":
            self.messages.append(_unknown_key(str(error["loc"][-1]), where))
            return
        if kind == "missing":
            self.messages.append("required key is missing")
            return
        expected = _EXPECTED.get(kind)
        if expected is not None:
            if expected not in self.expected:
                self.expected.append(expected)
        elif not where.union_member or _reword(error["msg"]) not in self.messages:
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


def _tag_on_its_key(error: Any) -> Any:
    """A wrong tag of a tagged union (``[engine] backend = "mongo"``) as an error
    of the tag's key, in the words of a Literal's error."""
    if error["type"] != "union_tag_invalid":
        return error
    key = error["ctx"]["discriminator"].strip("'")
    tags = [tag.strip() for tag in error["ctx"]["expected_tags"].split(",")]
    given = error["input"].get(key) if isinstance(error["input"], dict) else error["input"]
    return {
        **error,
        "type": "literal_error",
        "tag_key": key,
        "msg": f"Input should be {_one_of(tags)}",
        "input": given,
    }


@dataclass
class _Where:
    """Where an error's ``loc`` leads in the models."""

    # The key path as written in the file.
    path: list[int | str] = field(default_factory=list)
    # The model holding the last key.
    model: type[BaseModel] | None = None
    # A union member's tag was dropped from ``loc``.
    union_member: bool = False
    # In a tagged union's member: the tag's key and value, and the other members.
    tag: tuple[str, str] | None = None
    others: dict[str, type[BaseModel]] = field(default_factory=dict)


def _walk(root: type[BaseModel], loc: tuple[int | str, ...]) -> _Where:
    """Follow ``loc`` through the models: the path as written and the model at its end."""
    where = _Where()
    annotation: Any = root
    for part in loc:
        annotation = _strip_optional(annotation)
        origin = get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            where.model = annotation
            field_info = annotation.model_fields.get(str(part))
            annotation = field_info.annotation if field_info is not None else None
            where.path.append(part)
        elif origin is list:
            annotation = get_args(annotation)[0]
            where.path.append(part)
        elif origin is dict:
            annotation = get_args(annotation)[1]
            where.path.append(part)
        elif origin in (Union, types.UnionType):
            # pydantic tags each member's error with the member's name, or its
            # tag's value in a tagged union: not a key, but it names the member.
            where.union_member = True
            annotation = _tagged_member(get_args(annotation), str(part), where)
        else:
            annotation = None
            where.path.append(part)
    return where


def _tagged_member(members: tuple[Any, ...], tag: str, where: _Where) -> Any:
    """The member of a tagged union whose Literal key holds ``tag`` (None if none does)."""
    models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
    for model in models:
        for key, info in model.model_fields.items():
            if get_origin(info.annotation) is Literal and get_args(info.annotation) == (tag,):
                where.tag = (key, tag)
                where.others = {
                    get_args(other.model_fields[key].annotation)[0]: other
                    for other in models
                    if other is not model and key in other.model_fields
                }
                return model
    return None


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


def _unknown_key(key: str, where: _Where) -> str:
    # A key of another member of a tagged union: say which choice it belongs to.
    owners = [tag for tag, other in where.others.items() if key in other.model_fields]
    if where.tag is not None and owners:
        name, tag = where.tag
        choices = " or ".join(json.dumps(owner) for owner in owners)
        return f"not a setting when {name} = {json.dumps(tag)} (only when {name} = {choices})"
    model = where.model
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
