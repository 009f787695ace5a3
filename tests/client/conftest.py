"""The API and channels fixtures, for the clients' tests."""

from tests.api.conftest import api_hub  # noqa: F401
from tests.protocols.channels.conftest import channels  # noqa: F401
