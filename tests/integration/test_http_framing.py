"""test_http_framing.py - HTTP framing errors get an answer (issue 20).

libmicrohttpd decodes only the "chunked" transfer coding; a request with any other coding used to
get no answer at all (the server waited for a body it could not frame until the idle timeout).
g4serve now answers it with a JSON 400 at once. Framing errors libmicrohttpd detects itself
(a malformed chunk size, a chunk line longer than its read buffer) are answered by
libmicrohttpd with its own HTML bodies: it gives no hook to replace them (docs/api-http.md,
"Limits"); these tests pin that they are still answered and the connection closed."""
import json
import socket

import pytest


def exchange(server, data, timeout=10):
    """Sends raw bytes, returns (status, headers, body) of the first response (b"" when none)."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
            if b"\r\n\r\n" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                n = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if n and len(body) >= n[0]:
                    break
    except socket.timeout:
        pass
    s.close()
    if not out:
        return None, {}, b""
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("coding", ["gzip", "chunked, gzip", "gzip, chunked", "identity", "x"])
def test_unsupported_transfer_encoding_is_a_json_400(server, coding):
    req = ("POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Transfer-Encoding: %s\r\n\r\n" % coding).encode() + b"5\r\n{\"a\":\r\n"
    status, headers, body = exchange(server, req)
    assert status == 400, (coding, status, body)
    assert headers["content-type"] == "application/json"
    err = json.loads(body)["error"]
    assert err["code"] == 400 and "Transfer-Encoding" in err["message"]


def test_chunked_still_works(server):
    body = b'{"prompt": "hi"}'
    req = (b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: Chunked\r\n"
           b"Connection: close\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    status, _, raw = exchange(server, req)
    assert status == 200 and json.loads(raw)["count"] >= 1


def test_framing_errors_libmicrohttpd_answers_itself(server):
    hdr = b"POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    status, headers, _ = exchange(server, hdr + b"zz\r\nhello\r\n0\r\n\r\n")  # bad chunk size
    assert status == 400 and headers.get("connection", "").lower() == "close"
    # A 100 KB chunk extension overflows the connection's read buffer: libmicrohttpd 0.9.75 sends
    # its compiled-in "Internal server error" HTML page (no hook replaces it; raising the
    # per-connection buffer for every connection would cost more than the odd 500 does).
    status, headers, body = exchange(server, hdr + b"5;" + b"a" * 100000 + b"\r\nhello\r\n0\r\n\r\n")
    assert status == 500 and headers.get("connection", "").lower() == "close", (status, headers)
    assert body.startswith(b"<html>"), body[:200]
    # the server stays up and serves the next request
    assert exchange(server, b"GET /v1/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 200
