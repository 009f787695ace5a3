"""The attack tests use the protocols' own peers: paho-mqtt, Autobahn, websockets clients."""

from tests.protocols.channels.conftest import channels  # noqa: F401
from tests.protocols.mqtt.conftest import paho_peer, raw_mqtt  # noqa: F401
from tests.protocols.wamp.conftest import raw_wamp, wamp, wamp_session  # noqa: F401
