"""jsonrpc.py alone, over a real socket pair: frames, answers by id, and a peer that goes away."""

from __future__ import annotations

import io
import socket
import threading

import pytest

from lsp_server.jsonrpc import Connection, ConnectionLost, RemoteError, encode, read_message


@pytest.mark.parametrize("data", [b"", b"Content-Length: x\r\n\r\n{}", b"Content-Length: 10\r\n\r\n{}",
                                  b"Content-Length: 2\r\n\r\n[]", b"Content-Length: 3\r\n\r\n{x}",
                                  b"Content-Length: 999999999999\r\n\r\n"])
def test_a_bad_frame_ends_the_stream(data: bytes) -> None:
    assert read_message(io.BytesIO(data)) is None


def test_frames_round_trip() -> None:
    stream = io.BytesIO(encode({"jsonrpc": "2.0", "id": 1, "result": "é"}) + encode({"jsonrpc": "2.0", "method": "m"}))
    assert read_message(stream) == {"jsonrpc": "2.0", "id": 1, "result": "é"}
    assert read_message(stream) == {"jsonrpc": "2.0", "method": "m"}
    assert read_message(stream) is None


def test_requests_are_answered_by_id_and_errors_raise() -> None:
    a, b = socket.socketpair()

    def answer(conn: Connection, message: dict) -> None:
        if message["method"] == "fail":
            conn.respond(message["id"], error=(-32602, "limit: bad"))
        else:
            conn.respond(message["id"], {"echo": message["params"]})

    server = Connection(b, on_message=answer)
    client = Connection(a)
    try:
        futures = [client.request_async("echo", i) for i in range(20)]
        assert [f.result(5)["echo"] for f in futures] == list(range(20))
        with pytest.raises(RemoteError) as info:
            client.request("fail", {}, timeout=5)
        assert info.value.code == -32602 and str(info.value) == "limit: bad"
    finally:
        client.close()
        server.close()


def test_a_peer_that_goes_away_fails_waiting_requests_and_calls_on_lost() -> None:
    a, b = socket.socketpair()
    lost = threading.Event()
    client = Connection(a, on_lost=lambda _c: lost.set())
    waiting = client.request_async("never answered", None)
    b.close()
    assert lost.wait(5)
    with pytest.raises(ConnectionLost):
        waiting.result(5)
    with pytest.raises(ConnectionLost):
        client.request("after", None, timeout=5)
