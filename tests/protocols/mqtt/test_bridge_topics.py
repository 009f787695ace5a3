"""The bridge's pure parts: topic rules with prefixes, the echo filter, the broker URL."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.config import HubConfig
from protocols.mqtt.bridge import BrokerAddress, EchoFilter
from protocols.mqtt.bridge_topics import Routes
from protocols.mqtt.config import MqttBridgeTopic


def routes(*topics: dict[str, object]) -> Routes:
    return Routes([MqttBridgeTopic.model_validate(topic) for topic in topics])


def test_prefixes_swap_when_a_topic_crosses() -> None:
    """local_prefix + rest on the hub is remote_prefix + rest on the broker, both ways."""
    table = routes({"filter": "+/temp", "local_prefix": "site/", "remote_prefix": "b7/"})
    [route] = table.all
    assert (route.local_filter, route.remote_filter) == ("site/+/temp", "b7/+/temp")
    assert table.inbound_for("b7/hall/temp") == "site/hall/temp"
    assert table.inbound_for("b8/hall/temp") is None
    [(_, remote)] = table.outbound_for("site/+/temp", "site/hall/temp")
    assert remote == "b7/hall/temp"


def test_directions_select_inbound_and_outbound_rules() -> None:
    """'in' rules only bring in, 'out' rules only send out, 'both' do both."""
    table = routes(
        {"filter": "in/#", "direction": "in"},
        {"filter": "out/#", "direction": "out"},
        {"filter": "both/#"},
    )
    assert [r.filter for r in table.inbound] == ["in/#", "both/#"]
    assert table.local_filters() == ["out/#", "both/#"]
    assert table.inbound_for("out/x") is None
    assert table.subscribed_remotely("both/x")
    assert not table.subscribed_remotely("out/x")


def test_rules_sharing_a_local_filter_each_send() -> None:
    """Two out rules on one local filter are subscribed once and both forward."""
    table = routes(
        {"filter": "#", "direction": "out", "local_prefix": "x/", "remote_prefix": "one/"},
        {"filter": "#", "direction": "out", "local_prefix": "x/", "remote_prefix": "two/"},
    )
    assert table.local_filters() == ["x/#"]
    assert [t for _, t in table.outbound_for("x/#", "x/a")] == ["one/a", "two/a"]


@pytest.mark.parametrize(
    "topic",
    [{"filter": "a/#/b"}, {"filter": ""}, {"filter": "a", "local_prefix": "+/"}],
    ids=["hash-not-last", "empty", "wildcard-prefix"],
)
def test_bad_topic_rules_fail_at_config_load(topic: dict[str, object]) -> None:
    """A rule with a broken filter or a wildcard prefix is a config error, not a runtime one."""
    with pytest.raises(ValidationError):
        MqttBridgeTopic.model_validate(topic)


def test_bridge_url_must_be_mqtt_or_mqtts() -> None:
    """[mqtt.bridge] url takes mqtt:// or mqtts:// only."""
    with pytest.raises(ValidationError, match="mqtt://"):
        HubConfig.model_validate({"mqtt": {"bridge": {"url": "http://broker"}}})


def test_broker_address_parses_credentials_and_default_ports() -> None:
    """Credentials are percent-decoded; ports default to 1883 and 8883; str() hides secrets."""
    plain = BrokerAddress.parse("mqtt://broker.local")
    assert (plain.host, plain.port, plain.tls, plain.username) == (
        "broker.local",
        1883,
        False,
        None,
    )
    secure = BrokerAddress.parse("mqtts://us%40er:p%3Ass@10.0.0.1:9999")
    assert (secure.port, secure.tls, secure.username, secure.password) == (
        9999,
        True,
        "us@er",
        "p:ss",
    )
    assert str(secure) == "mqtts://10.0.0.1:9999"
    assert BrokerAddress.parse("mqtts://h").port == 8883


def test_echo_filter_takes_one_echo_per_copy_sent() -> None:
    """An echo is recognised once per copy sent, by topic and payload."""
    echoes = EchoFilter()
    echoes.expect("t", b"x")
    echoes.expect("t", b"x")
    assert not echoes.consume("t", b"other")
    assert not echoes.consume("u", b"x")
    assert echoes.consume("t", b"x")
    assert echoes.consume("t", b"x")
    assert not echoes.consume("t", b"x")
    assert len(echoes) == 0


def test_echo_filter_forgets_after_ttl_and_stays_bounded() -> None:
    """Expected echoes expire (the broker may never send one) and the table is bounded."""
    expired = EchoFilter(ttl=-1)
    expired.expect("t", b"x")
    assert not expired.consume("t", b"x")
    bounded = EchoFilter(max_entries=3)
    for n in range(10):
        bounded.expect(f"t/{n}", b"x")
    assert len(bounded) == 3
    assert bounded.consume("t/9", b"x")
    assert not bounded.consume("t/0", b"x")
