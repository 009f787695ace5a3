"""One table of RPC methods, served alike over JSON-RPC, channels and WAMP.

Methods are plain Python functions, sync or async. Their parameters are
validated by pydantic from the type hints, by position or by name; a parameter
annotated :class:`CallContext` (or named ``ctx``) receives the calling session.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model

from hub.errors import HubError
from hub.handler import Identity
from hub.inline import never_suspends

if TYPE_CHECKING:
    from hub.app import Hub

# JSON-RPC 2.0 error codes, shared by every protocol that maps them.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# The hub's own codes (docs/jsonrpc.md): a call the caller may not make.
PERMISSION_DENIED = -32011

# Method names are dotted or slashed identifiers: "math.add", "users/get".
_METHOD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:[./][A-Za-z_][A-Za-z0-9_]*)*$")
# "rpc." is reserved by JSON-RPC 2.0 for system extensions (rpc.discover).
RESERVED_PREFIXES = ("rpc.", "wamp.")

F = TypeVar("F", bound=Callable[..., Any])


class RpcError(HubError):
    """An application error with a JSON-RPC code, message and optional data."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def __repr__(self) -> str:
        return f"RpcError({self.code}, {self.message!r}, {self.data!r})"


class CallContext:
    """What a method learns about its caller, and how it talks back to it."""

    __slots__ = ("hub", "identity", "session_id", "subprotocol")

    def __init__(
        self, hub: Hub, session_id: str, subprotocol: str, identity: Identity | None
    ) -> None:
        self.hub = hub
        self.session_id = session_id
        self.subprotocol = subprotocol
        self.identity = identity

    def notify(self, method: str, params: Any = None) -> None:
        """Send a notification to the calling client."""
        self.hub.notify(self.session_id, method, params)

    async def call(self, method: str, params: Any = None, *, timeout: float | None = None) -> Any:
        """Call a method that the calling client exposes."""
        return await self.hub.call(self.session_id, method, params, timeout=timeout)


@dataclass(frozen=True, slots=True)
class RpcOptions:
    """What ``@rpc`` recorded on a function, before a hub serves it."""

    name: str
    run_in_thread: bool | None = None
    description: str | None = None


RPC_MARK = "__wshub_rpc__"


def rpc(
    name: str | None = None, *, run_in_thread: bool | None = None, description: str | None = None
) -> Callable[[F], F]:
    """Mark a function as an RPC method, for modules named in ``[rpc] modules``.

    The function is left unchanged; the hub that imports the module serves it.
    """

    def mark(func: F) -> F:
        setattr(func, RPC_MARK, RpcOptions(name or func.__name__, run_in_thread, description))
        return func

    return mark


class RpcMethod:
    """A registered function with its parameter validator."""

    def __init__(
        self,
        name: str,
        func: Callable[..., Any],
        *,
        run_in_thread: bool | None = None,
        description: str | None = None,
    ) -> None:
        self.name = name
        self.func = func
        self.is_async = inspect.iscoroutinefunction(func)
        # Sync functions may block, so by default they run in a worker thread.
        self.run_in_thread = (not self.is_async) if run_in_thread is None else run_in_thread
        if self.is_async and self.run_in_thread:
            raise ValueError(f"{name}: run_in_thread applies to sync functions only")
        self.description = description or inspect.getdoc(func)
        signature = inspect.signature(func)
        hints = typing.get_type_hints(func, include_extras=True)
        self.context_param: str | None = None
        fields: dict[str, Any] = {}
        for param in signature.parameters.values():
            annotation = hints.get(param.name, Any)
            if annotation is CallContext or (param.name == "ctx" and annotation is Any):
                self.context_param = param.name
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"{name}: *args and **kwargs cannot be validated; name them")
            if param.kind is param.POSITIONAL_ONLY:
                raise TypeError(f"{name}: positional-only parameters are not supported")
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (annotation, default)
        self.param_names: tuple[str, ...] = tuple(fields)
        # Params whose validation is the identity (see _trivial_fields): bound
        # without pydantic when well-formed, by pydantic otherwise (its errors).
        self._trivial = _trivial_fields(fields)
        # Answerable without a task: runs to its end in one step (hub.inline).
        self.inline = never_suspends(func) or (not self.is_async and not self.run_in_thread)
        self.params_model: type[BaseModel] = create_model(
            f"{_model_name(name)}Params",
            __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
            **fields,
        )
        self._validate = self.params_model.__pydantic_validator__.validate_python
        return_hint = hints.get("return", Any)
        self.result_adapter: TypeAdapter[Any] | None = (
            None if return_hint in (Any, None, type(None)) else TypeAdapter(return_hint)
        )

    def bind(self, params: Any) -> dict[str, Any]:
        """Validate params (list, dict or absent) into keyword arguments."""
        if self._trivial is not None:
            bound = _bind_trivial(self._trivial, params)
            if bound is not None:
                return bound
        if type(params) is dict:
            named = params
        elif params is None:
            named = {}
        elif isinstance(params, list | tuple):
            if len(params) > len(self.param_names):
                raise RpcError(
                    INVALID_PARAMS,
                    "Invalid params",
                    [
                        {
                            "type": "too_many_arguments",
                            "msg": f"expected at most {len(self.param_names)} "
                            f"positional params, got {len(params)}",
                        }
                    ],
                )
            named = dict(zip(self.param_names, params, strict=False))
        elif isinstance(params, Mapping):
            named = dict(params)
        else:
            raise RpcError(INVALID_PARAMS, "Invalid params", "params must be an array or object")
        try:
            validated = self._validate(named)
        except ValidationError as exc:
            raise RpcError(INVALID_PARAMS, "Invalid params", validation_detail(exc)) from None
        # The model's __dict__ holds exactly the declared fields (extra="forbid").
        return dict(validated.__dict__)

    async def invoke(self, params: Any, context: CallContext) -> Any:
        """Validate params, run the function, return its result."""
        # bind()'s shortcut first, without the call: this runs for every request.
        trivial = self._trivial
        kwargs = _bind_trivial(trivial, params) if trivial is not None else None
        if kwargs is None:
            kwargs = self.bind(params)
        if self.context_param is not None:
            kwargs[self.context_param] = context
        if self.is_async:
            return await self.func(**kwargs)
        if self.run_in_thread:
            return await asyncio.to_thread(functools.partial(self.func, **kwargs))
        return self.func(**kwargs)

    def openrpc(self, defs: dict[str, Any]) -> dict[str, Any]:
        schema = self.params_model.model_json_schema(ref_template="#/components/schemas/{model}")
        defs.update(schema.pop("$defs", {}))
        required = set(schema.get("required", []))
        properties = schema.get("properties", {})
        method: dict[str, Any] = {
            "name": self.name,
            "paramStructure": "either",
            "params": [
                {"name": name, "required": name in required, "schema": properties.get(name, {})}
                for name in self.param_names
            ],
            "result": {"name": "result", "schema": self._result_schema(defs)},
        }
        if self.description:
            method["description"] = self.description
        return method

    def _result_schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        if self.result_adapter is None:
            return {}
        schema = self.result_adapter.json_schema(ref_template="#/components/schemas/{model}")
        defs.update(schema.pop("$defs", {}))
        return schema


# A parameter whose check is the identity: (name, exact type or None for Any, default).
TrivialField = tuple[str, type | None, Any]
# Defaults pydantic hands over as they are (it copies mutable ones).
_PLAIN_DEFAULTS = (type(None), bool, int, float, str, bytes, type(...))
# Annotations for which a value of exactly that type validates to itself.
_EXACT_TYPES = (int, float, str, bool)


def _trivial_fields(fields: dict[str, tuple[Any, Any]]) -> tuple[TrivialField, ...] | None:
    """The fields, if every one is ``Any`` or a plain scalar type with a plain default."""
    trivial: list[TrivialField] = []
    for name, (annotation, default) in fields.items():
        if type(default) not in _PLAIN_DEFAULTS:
            return None
        if annotation is Any or annotation is object:
            trivial.append((name, None, default))
        elif annotation in _EXACT_TYPES:
            trivial.append((name, annotation, default))
        else:
            return None
    return tuple(trivial)


def _bind_trivial(fields: tuple[TrivialField, ...], params: Any) -> dict[str, Any] | None:
    """Keyword arguments for well-formed params; None for pydantic to judge (and word)."""
    if type(params) is list:
        # By position, without building a dict of names first (the usual call).
        count = len(params)
        if count > len(fields):
            return None
        bound: dict[str, Any] = {}
        for index, (name, exact, default) in enumerate(fields):
            if index < count:
                value = params[index]
                if exact is not None and type(value) is not exact:
                    return None
                bound[name] = value
            elif default is ...:
                return None
            else:
                bound[name] = default
        return bound
    if type(params) is dict:
        if len(params) > len(fields):
            return None
        given = params
    elif params is None:
        given = {}
    else:
        return None
    kwargs: dict[str, Any] = {}
    used = 0
    for name, exact, default in fields:
        if name in given:
            value = given[name]
            if exact is not None and type(value) is not exact:
                return None
            kwargs[name] = value
            used += 1
        elif default is ...:
            return None
        else:
            kwargs[name] = default
    # An unknown name among dict params: pydantic refuses it (extra="forbid").
    return kwargs if used == len(given) else None


Forward = Callable[[Any, CallContext], Awaitable[Any]]


class RemoteMethod:
    """A method a connected client provides (a WAMP callee), served to every protocol.

    Params go to ``forward`` as received: the callee validates them, not pydantic.
    The method lives as long as the registration: its owner removes it.
    """

    __slots__ = ("forward", "name")

    def __init__(self, name: str, forward: Forward) -> None:
        self.name = name
        self.forward = forward

    async def invoke(self, params: Any, context: CallContext) -> Any:
        return await self.forward(params, context)


# Finds a method served elsewhere (the RPC proxy to a backend) for a name no
# local method has; None when it serves no such name.
Fallback = Callable[[str], "RpcMethod | None"]


class MethodTable:
    """Every RPC method of a hub, by name: Python functions and client-provided ones."""

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self._methods: dict[str, RpcMethod] = {}
        # The methods of _methods that run to their end in one step (hub.inline):
        # what a protocol may answer without a task, found in one lookup.
        self.inline: dict[str, RpcMethod] = {}
        self._remote: dict[str, RemoteMethod] = {}
        self._reserved = set(reserved)
        self._fallback: Fallback | None = None

    def set_fallback(self, fallback: Fallback) -> None:
        """Serve names no local method has through ``fallback`` (the RPC proxy)."""
        self._fallback = fallback

    def add(
        self,
        name: str,
        func: Callable[..., Any],
        *,
        run_in_thread: bool | None = None,
        description: str | None = None,
    ) -> RpcMethod:
        validate_method_name(name)
        if name in self._reserved:
            raise ValueError(f"method name {name!r} is reserved by a built-in protocol method")
        if name in self._methods or name in self._remote:
            raise ValueError(f"method {name!r} is already registered")
        method = RpcMethod(name, func, run_in_thread=run_in_thread, description=description)
        self._methods[name] = method
        if method.inline:
            self.inline[name] = method
        return method

    def add_remote(self, name: str, forward: Forward) -> RemoteMethod:
        """Serve a client-provided method; ValueError if the name is taken or reserved."""
        if name in self._reserved or name.startswith(RESERVED_PREFIXES):
            raise ValueError(f"method name {name!r} is reserved")
        if name in self._methods or name in self._remote:
            raise ValueError(f"method {name!r} is already registered")
        method = self._remote[name] = RemoteMethod(name, forward)
        return method

    def remove_remote(self, method: RemoteMethod) -> None:
        """Stop serving ``method``; a newer method under the same name stays."""
        if self._remote.get(method.name) is method:
            del self._remote[method.name]

    def remove(self, name: str) -> None:
        self._methods.pop(name, None)
        self.inline.pop(name, None)

    def get(self, name: str) -> RpcMethod | RemoteMethod | None:
        method = self._methods.get(name)
        if method is not None:
            return method
        remote = self._remote.get(name)
        if remote is None and self._fallback is not None:
            return self._fallback(name)
        return remote

    def local(self, name: str) -> RpcMethod | None:
        """A method of this hub (not a client-provided one): Python, or proxied."""
        method = self._methods.get(name)
        if method is None and self._fallback is not None:
            return self._fallback(name)
        return method

    def __contains__(self, name: object) -> bool:
        return name in self._methods or name in self._remote

    def __iter__(self) -> typing.Iterator[RpcMethod]:
        return iter(self._methods.values())

    @property
    def names(self) -> list[str]:
        return sorted(self._methods)

    def openrpc(self, title: str = "wshub", version: str = "0.1.0") -> dict[str, Any]:
        """The OpenRPC 1.3 document describing every method."""
        defs: dict[str, Any] = {}
        methods = [self._methods[name].openrpc(defs) for name in self.names]
        document: dict[str, Any] = {
            "openrpc": "1.3.2",
            "info": {"title": title, "version": version},
            "methods": methods,
        }
        if defs:
            document["components"] = {"schemas": defs}
        return document


def validate_method_name(name: str) -> None:
    if not _METHOD_NAME.match(name):
        raise ValueError(
            f"invalid method name {name!r}: use identifiers separated by '.' or '/', "
            "like 'math.add'"
        )
    if name.startswith(RESERVED_PREFIXES):
        raise ValueError(f"method name {name!r} uses a reserved prefix {RESERVED_PREFIXES}")


def collect_marked(namespace: Mapping[str, Any]) -> list[tuple[RpcOptions, Callable[..., Any]]]:
    """The functions of a module marked with ``@rpc``."""
    found = []
    for value in namespace.values():
        options = getattr(value, RPC_MARK, None)
        if isinstance(options, RpcOptions) and callable(value):
            found.append((options, value))
    return found


def _model_name(method_name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[./_]", method_name) if part)


def validation_detail(exc: ValidationError) -> list[dict[str, Any]]:
    # Only what helps the caller: where, what kind, and the message. No input
    # echo beyond the location, no URLs.
    return [
        {"loc": list(error["loc"]), "type": error["type"], "msg": error["msg"]}
        for error in exc.errors(include_url=False, include_input=False)
    ]


AsyncMethod = Callable[..., Awaitable[Any]]
