"""Coverage-guided fuzzing of wshub's pure codecs with atheris (libFuzzer for Python).

One target per codec (``fuzz_jsonrpc``, ``fuzz_channels``, ``fuzz_mqtt``,
``fuzz_wamp``), each a ``check(data: bytes)`` that raises only when a property
breaks: an exception other than the codec's own error type escapes, or a round
trip changes a message. ``python -m fuzz.run`` (``make fuzz``) seeds a corpus
from valid messages (:mod:`fuzz.seeds`) and runs each target for a bounded time.

Nothing here imports a codec at module level: ``fuzz.harness`` imports the
target under atheris' instrumentation, so coverage reaches the codec's code.
"""
