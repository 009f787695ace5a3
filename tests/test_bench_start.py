"""The benchmark's servers start on another port when theirs was taken before they bound it."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

from bench import processes
from bench.processes import Server, free_port, listens_on, retry_start, running, wait_for_port


def test_a_server_whose_port_was_taken_starts_again_on_a_free_one() -> None:
    # Another process listens on the port the first attempt was given: the
    # bench must neither mistake it for its server nor give up.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1]])
        tried: list[int] = []

        @contextlib.contextmanager
        def launch() -> Iterator[Server]:
            port = next(ports, None) or free_port()
            tried.append(port)
            args = [processes.PYTHON, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
            with running(args, "http.server") as process:
                wait_for_port(port, process, "http.server")
                yield Server(f"http://127.0.0.1:{port}/", process.pid)

        with retry_start(launch) as server:
            assert len(tried) == 2
            assert tried[0] == taken.getsockname()[1]
            assert server.url.endswith(f":{tried[1]}/")
            assert listens_on(server.pid, tried[1])
            assert not listens_on(server.pid, tried[0])
