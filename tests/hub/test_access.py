"""Access rules and the RPC permission table, evaluated without a network."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from hub import Hub, HubConfig
from hub.access import RpcPermissions, Rule, claim_value, glob_matches
from hub.channels import ChannelService
from hub.config import AccessRule, ChannelsConfig, ConfigError, parse_config
from hub.engine import memory_engine
from hub.errors import PermissionDenied
from hub.handler import Identity
from hub.hooks import Hooks
from hub.rpc import CallContext
from tests.conftest import HubFactory
from tests.hub.test_http import http_get

ADA = Identity("ada", {"roles": ["editor", "viewer"], "plan": "pro", "level": 3, "staff": True})
BOB = Identity("bob", {"roles": "viewer", "plan": "free", "level": 1, "staff": False})


def rule(**fields: Any) -> Rule:
    return Rule(AccessRule.model_validate(fields))


# -- rules ------------------------------------------------------------------------


def test_empty_rule_admits_everyone() -> None:
    """The empty rule admits anonymous sessions and every user."""
    empty = rule()
    assert empty.open
    assert empty.admits(None)
    assert empty.admits(ADA)


def test_authenticated_refuses_anonymous() -> None:
    """authenticated = true admits any identity and refuses a session without one."""
    authenticated = rule(authenticated=True)
    assert not authenticated.admits(None)
    assert authenticated.admits(ADA)
    assert authenticated.admits(Identity("someone"))


def test_users_list() -> None:
    """users admits the listed user ids only, and never an anonymous session."""
    only_ada = rule(users=["ada"])
    assert only_ada.admits(ADA)
    assert not only_ada.admits(BOB)
    assert not only_ada.admits(None)


def test_scalar_claim_must_equal() -> None:
    """A scalar claim condition admits only an equal claim value."""
    pro = rule(claims={"plan": "pro"})
    assert pro.admits(ADA)
    assert not pro.admits(BOB)
    assert not pro.admits(Identity("carol"))  # the claim is missing


def test_list_condition_accepts_any_value() -> None:
    """A list condition names the accepted values; one of them is enough."""
    paying = rule(claims={"plan": ["pro", "enterprise"]})
    assert paying.admits(ADA)
    assert not paying.admits(BOB)


def test_list_claim_matches_when_it_holds_an_accepted_value() -> None:
    """A list-valued claim (roles) matches when it holds any accepted value."""
    assert rule(claims={"roles": "editor"}).admits(ADA)
    assert rule(claims={"roles": ["admin", "viewer"]}).admits(ADA)
    assert not rule(claims={"roles": ["admin"]}).admits(ADA)
    # A scalar claim against a list condition, the other way round.
    assert rule(claims={"roles": ["admin", "viewer"]}).admits(BOB)


def test_booleans_are_not_numbers() -> None:
    """claims true/false match booleans only, never 1/0 (which == would confuse)."""
    staff = rule(claims={"staff": True})
    assert staff.admits(ADA)
    assert not staff.admits(BOB)
    assert not staff.admits(Identity("x", {"staff": 1}))
    assert not rule(claims={"level": 1}).admits(Identity("x", {"level": True}))
    assert rule(claims={"level": 3}).admits(ADA)
    assert rule(claims={"level": 3}).admits(Identity("x", {"level": 3.0}))


def test_claims_of_other_types_never_match() -> None:
    """A claim holding a mapping or None matches no condition."""
    assert not rule(claims={"plan": "pro"}).admits(Identity("x", {"plan": {"name": "pro"}}))
    assert not rule(claims={"plan": "pro"}).admits(Identity("x", {"plan": None}))


def test_every_condition_must_hold() -> None:
    """users, claims and authenticated combine with AND."""
    both = rule(users=["ada", "bob"], claims={"plan": "pro"})
    assert both.admits(ADA)
    assert not both.admits(BOB)


def test_dotted_claim_reaches_nested_claims() -> None:
    """realm_access.roles reads Keycloak's nested claim; a literal dotted key wins."""
    keycloak = Identity("k", {"realm_access": {"roles": ["admin"]}})
    assert rule(claims={"realm_access.roles": "admin"}).admits(keycloak)
    assert not rule(claims={"realm_access.roles": "root"}).admits(keycloak)
    literal = Identity("l", {"a.b": "flat", "a": {"b": "nested"}})
    assert claim_value(literal.claims, "a.b") == "flat"
    assert not rule(claims={"x.y": "z"}).admits(Identity("m", {"x": "not a mapping"}))


# -- the RPC permission table -----------------------------------------------------------


def test_glob_star_crosses_dots_and_nothing_else_is_special() -> None:
    """``*`` matches any run of characters, dots included; ``?`` and ``[`` are literal."""
    assert glob_matches("admin.*", "admin.users.delete")
    assert glob_matches("*.delete", "admin.users.delete")
    assert glob_matches("admin.*", "admin.")
    assert not glob_matches("admin.*", "administrator.x")
    assert not glob_matches("admin.?", "admin.x")
    assert glob_matches("admin.?", "admin.?")
    assert not glob_matches("a[bc]", "ab")
    assert not glob_matches("Admin.*", "admin.x")  # case-sensitive


def permissions(**table: Any) -> RpcPermissions:
    return RpcPermissions({key: AccessRule.model_validate(value) for key, value in table.items()})


def test_unmatched_methods_are_open() -> None:
    """A method no key matches is open to anonymous sessions."""
    table = permissions(**{"admin.*": {"users": ["root"]}})
    assert table.lookup("math.add")[0] is None
    assert table.admits("math.add", None)
    assert not table.admits("admin.reset", ADA)
    assert table.admits("admin.reset", Identity("root"))


def test_longest_key_wins() -> None:
    """The most specific (longest) matching key decides, whatever the config order."""
    table = permissions(
        **{
            "*": {"authenticated": True},
            "admin.*": {"users": ["root"]},
            "admin.users.*": {"claims": {"roles": "editor"}},
        }
    )
    assert table.lookup("admin.users.delete")[0] == "admin.users.*"
    assert table.admits("admin.users.delete", ADA)
    assert not table.admits("admin.reset", ADA)
    assert table.lookup("math.add")[0] == "*"
    assert not table.admits("math.add", None)


def test_exact_key_beats_a_longer_glob() -> None:
    """An exact name beats every glob, even a longer one matching the same name."""
    table = permissions(**{"admin.x": {}, "admin.x*": {"users": ["root"]}})
    assert table.lookup("admin.x")[0] == "admin.x"
    assert table.admits("admin.x", None)
    assert not table.admits("admin.xy", None)


def test_ties_are_broken_by_literal_text_then_name() -> None:
    """Equal-length globs: fewer stars first, then sort order, never config order."""
    forward = permissions(**{"a.*.c": {"users": ["one"]}, "a.b.*": {"users": ["two"]}})
    backward = permissions(**{"a.b.*": {"users": ["two"]}, "a.*.c": {"users": ["one"]}})
    assert forward.lookup("a.b.c")[0] == backward.lookup("a.b.c")[0] == "a.*.c"
    stars = permissions(**{"**.c": {}, "a*.c": {"users": ["x"]}})
    assert stars.lookup("ab.c")[0] == "a*.c"


def test_permission_keys_load_from_toml_shapes() -> None:
    """[rpc.permissions] with glob keys and [rpc.register_access] parse; typos fail."""
    config = parse_config(
        {
            "rpc": {
                "permissions": {"admin.*": {"claims": {"roles": ["admin"]}}},
                "register_access": {"authenticated": True},
            }
        }
    )
    assert Hub(config).rpc_permissions.lookup("admin.reset")[0] == "admin.*"
    with pytest.raises(
        ConfigError,
        match=re.escape('rpc.permissions."admin.*".user: unknown key; did you mean `users`?'),
    ):
        parse_config({"rpc": {"permissions": {"admin.*": {"user": ["x"]}}}})


# -- the hub's call check and the channel service ------------------------------------------


def context(hub: Hub, identity: Identity | None) -> CallContext:
    return CallContext(hub, "s1", "test", identity)


async def test_authorize_call_runs_rules_then_hooks() -> None:
    """Hub.authorize_call refuses by the table first, then by on_call hooks matching the glob."""
    config = HubConfig.model_validate({"rpc": {"permissions": {"admin.*": {"users": ["ada"]}}}})
    hub = Hub(config)
    seen: list[str] = []

    @hub.on_call("admin.users.*")
    def only_editors(ctx: CallContext, method: str) -> None:
        seen.append(method)
        if ctx.identity is None or "editor" not in ctx.identity.claims.get("roles", []):
            raise PermissionDenied("editors only")

    await hub.authorize_call(context(hub, ADA), "admin.users.delete")
    await hub.authorize_call(context(hub, None), "math.add")
    with pytest.raises(PermissionDenied, match="not authorized"):
        await hub.authorize_call(context(hub, BOB), "admin.users.delete")
    with pytest.raises(PermissionDenied, match="editors only"):
        await hub.authorize_call(context(hub, Identity("ada")), "admin.users.delete")
    # The hook never ran for the call the table refused, nor for other names.
    assert seen == ["admin.users.delete", "admin.users.delete"]


def test_register_access() -> None:
    """Hub.authorize_register follows rpc.register_access."""
    hub = Hub(HubConfig.model_validate({"rpc": {"register_access": {"users": ["svc"]}}}))
    hub.authorize_register(context(hub, Identity("svc")), "svc.work")
    with pytest.raises(PermissionDenied):
        hub.authorize_register(context(hub, ADA), "svc.work")


def service(namespaces: dict[str, Any], default: dict[str, Any] | None = None) -> ChannelService:
    config = ChannelsConfig.model_validate({"namespaces": namespaces, "default": default or {}})
    return ChannelService(memory_engine(), config, Hooks())


@pytest.mark.parametrize(
    ("pattern", "identity", "allowed"),
    [
        ("#", ADA, True),  # ada is staff: "staff" admits her, nothing else is closed
        ("#", BOB, False),  # reaches staff/...
        ("+/notes", BOB, False),  # staff/notes
        ("public/#", BOB, True),
        ("staff/#", BOB, False),  # the pattern's own namespace
        ("staff/#", None, False),
        ("public/+", None, True),
        ("staff/open/#", BOB, True),  # a more specific namespace, open to all
        ("staff/+/x", BOB, False),  # staff/open/x is fine, staff/y/x is not
    ],
)
async def test_pattern_reach_respects_subscribe_access(
    pattern: str, identity: Identity | None, allowed: bool
) -> None:
    """A pattern may not reach into a namespace whose subscribe_access refuses the user."""
    channels = service(
        {
            "staff": {"subscribe_access": {"claims": {"staff": True}}},
            "staff/open": {},
        }
    )
    ctx = context(Hub(), identity)
    if allowed:
        await channels.authorize_subscribe(ctx, pattern)
    else:
        with pytest.raises(PermissionDenied):
            await channels.authorize_subscribe(ctx, pattern)


@pytest.mark.parametrize(
    ("name", "match", "keys"),
    [
        ("admin.x", "exact", {"admin.*"}),
        ("admin", "exact", {None, "admin.*"}),  # its own (none) and the glob hanging from it
        ("admin.status", "exact", {"admin.status"}),  # an exact key beats the glob
        ("adm", "prefix", {"admin.*", "admin.status", "*.delete"}),  # adm.delete too
        ("admin.users", "prefix", {"admin.*", "*.delete"}),
        ("bill", "prefix", {"*.delete"}),
        ("bill", "exact", {None}),
        ("admin..delete", "wildcard", {"admin.*", "admin.status", "*.delete"}),
        (".delete", "wildcard", {"admin.*", "admin.status", "*.delete"}),
    ],
)
def test_rules_reaching_a_registration(name: str, match: str, keys: set[str | None]) -> None:
    """RpcPermissions.reaching: the keys guarding calls a WAMP registration could receive."""
    table = RpcPermissions(
        {
            "admin.*": AccessRule(users=["ada"]),
            "admin.status": AccessRule(),
            "*.delete": AccessRule(authenticated=True),
        }
    )
    assert {key for key, _ in table.reaching(name, match)} == keys


async def test_unset_rules_follow_subscribe_access() -> None:
    """Unset publish/presence/history rules take subscribe_access; an explicit {} reopens one."""
    staff = {"claims": {"staff": True}}
    channels = service(
        {
            "closed": {"subscribe_access": staff},
            "feed": {"subscribe_access": staff, "history_access": {}, "publish_access": {}},
            "open": {},
        }
    )
    ctx = context(Hub(), BOB)
    for read in (channels.presence, channels.presence_stats, channels.history):
        with pytest.raises(PermissionDenied):
            await read(ctx, "closed/x")
        await read(context(Hub(), ADA), "closed/x")
        await read(ctx, "open/x")
    with pytest.raises(PermissionDenied):
        channels.authorize_publish(ctx, "closed/x")
    assert (await channels.history(ctx, "feed/x")).publications == []
    channels.authorize_publish(ctx, "feed/x")
    with pytest.raises(PermissionDenied):
        await channels.presence(ctx, "feed/x")


async def test_closed_to_subscribers_closes_reading() -> None:
    """allow_subscribe = false: history and presence refuse everyone unless a rule opens them."""
    channels = service(
        {
            "internal": {"allow_subscribe": False},
            "archive": {"allow_subscribe": False, "history_access": {"users": ["bob"]}},
        }
    )
    for identity in (None, ADA, BOB):
        for read in (channels.presence, channels.history):
            with pytest.raises(PermissionDenied):
                await read(context(Hub(), identity), "internal/x")
    channels.authorize_publish(context(Hub(), BOB), "internal/x")  # allow_publish decides
    assert (await channels.history(context(Hub(), BOB), "archive/x")).publications == []


async def test_dollar_names_are_the_servers() -> None:
    """No client may publish to a name starting with '$' ($SYS/...), whatever the rules say."""
    channels = service({})
    with pytest.raises(PermissionDenied, match="server"):
        channels.authorize_publish(context(Hub(), ADA), "$SYS/broker/uptime")
    await channels.publish("$SYS/broker/uptime", 1)  # the server itself may


async def test_server_side_presence_and_history_ignore_rules() -> None:
    """ctx=None (the server) reads presence and history that every client is refused."""
    closed = {"users": ["nobody"]}
    channels = service({}, default={"presence_access": closed, "history_access": closed})
    assert await channels.presence(None, "room") == {}
    assert await channels.presence_stats(None, "room") == {"clients": 0, "users": 0}
    assert (await channels.history(None, "room")).publications == []
    ctx = context(Hub(), ADA)
    for read in (channels.presence, channels.presence_stats, channels.history):
        with pytest.raises(PermissionDenied):
            await read(ctx, "room")


async def test_openrpc_json_follows_rpc_discover(make_hub: HubFactory) -> None:
    """GET /openrpc.json is 401 where [rpc.permissions] closes rpc.discover to anonymous callers."""
    closed = await make_hub({"rpc": {"permissions": {"rpc.*": {"authenticated": True}}}})
    status, _, body = await http_get(closed, "/openrpc.json")
    assert status == 401
    assert b"rpc.discover" in body
    open_hub = await make_hub({"rpc": {"permissions": {"admin.*": {"authenticated": True}}}})
    status, _, body = await http_get(open_hub, "/openrpc.json")
    assert status == 200
    assert json.loads(body)["openrpc"]
