"""Serve mode of a bare model executable (`--serve`): the HTTP interface over real sockets — round trips
equal to the command line's outputs, every kind of bad request answered and survived, limits, concurrency,
a client that never reads, the token, a unix socket, SIGTERM."""

import io
import json
import os
import socket
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.served import Served

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(mlp_exe):
    s = Served(mlp_exe)
    yield s
    s.stop()


def _cli(exe, x, tmp_path):
    np.save(tmp_path / "x.npy", x)
    r = subprocess.run([str(exe), "--input", f"features={tmp_path / 'x.npy'}", "--json"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return np.array(json.loads(r.stdout)["logits"]["data"], np.float32), r


def test_info_is_the_manifest(server, mlp_exe):
    status, info = server.json("GET", "/v1/info")
    cli = json.loads(subprocess.run([str(mlp_exe), "--info"], capture_output=True, text=True).stdout)
    assert status == 200 and info == cli
    assert info["inputs"] == [{"name": "features", "dtype": "float32", "shape": ["batch", 32]}]


def test_json_classify_equals_the_command_line(server, mlp_exe, tmp_path):
    x = np.random.default_rng(1).standard_normal((3, 32)).astype(np.float32)
    status, r = server.json("POST", "/v1/classify", {"inputs": {"features": x.tolist()}})
    assert status == 200, r
    expected, _ = _cli(mlp_exe, x, tmp_path)
    np.testing.assert_array_equal(np.array(r["outputs"]["logits"], np.float32), expected)  # same session code
    assert set(r["timing"]) == {"decode_ms", "inference_ms", "encode_ms"} and all(v >= 0 for v in r["timing"].values())


def test_npz_body_and_npz_answer(server, mlp_exe, tmp_path):
    x = np.random.default_rng(2).standard_normal((2, 32)).astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, features=x)
    status, headers, body = server.request("POST", "/v1/classify", buf.getvalue(),
                                           {"Content-Type": "application/x-npz", "Accept": "application/x-npz"})
    assert status == 200 and headers["Content-Type"] == "application/x-npz"
    expected, _ = _cli(mlp_exe, x, tmp_path)
    np.testing.assert_array_equal(np.load(io.BytesIO(body))["logits"], expected)
    assert json.loads(headers["X-Timing"])["inference_ms"] >= 0


@pytest.mark.parametrize("value,words", [
    ({"inputs": {"features": [[0.0] * 31]}},
     "input 'features' has shape [1, 31], expected features: float32[batch, 32]"),
    ({"inputs": {"x": [[0.0] * 32]}}, "unknown input 'x', missing input 'features'"),
    ({"inputs": {"features": [["a"] * 32]}}, "input 'features': not a numeric array of float32"),
    ({"features": [[0.0] * 32]}, 'body needs {"inputs": {"NAME": [...]}}'),
])
def test_wrong_inputs_get_400_with_the_command_lines_message(server, value, words):
    status, r = server.json("POST", "/v1/classify", value)
    assert status == 400 and words in r["error"], r


def test_the_cli_says_the_same_for_a_wrong_shape(mlp_exe, tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((1, 31), np.float32))
    r = subprocess.run([str(mlp_exe), "--input", f"features={tmp_path / 'bad.npy'}"], capture_output=True, text=True)
    assert "input 'features' has shape [1, 31], expected features: float32[batch, 32]" in r.stderr


def test_bad_bodies_and_bad_requests_are_answered_and_survived(server):
    assert server.request("POST", "/v1/classify", b"{not json")[0] == 400
    assert server.request("POST", "/v1/classify", b"PK\x03\x04garbage", {"Content-Type": "application/x-npz"})[0] \
        == 400
    deep = b"[" * 100_000 + b"]" * 100_000  # the JSON parser's recursion limit
    assert server.request("POST", "/v1/classify", b'{"inputs": {"features": ' + deep + b"}}")[0] == 400
    for raw, status in [(b"GET /../../etc/passwd HTTP/1.1\r\nConnection: close\r\n\r\n", b"404"),
                        (b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nConnection: close\r\n\r\n", b"404"),
                        (b"NONSENSE\r\n\r\n", b"400"),
                        (b"GET / HTTP/1.1 extra\r\n\r\n", b"400"),
                        (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n", b"414"),
                        (b"GET /healthz HTTP/1.1\r\nX: " + b"b" * 10_000 + b"\r\n\r\n", b"431"),
                        (b"GET /healthz HTTP/1.1\r\n" + b"X: y\r\n" * 100 + b"\r\n", b"431"),
                        (b"POST /v1/classify HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"411"),
                        (b"POST /v1/classify HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"400"),
                        (b"GET /v1/classify HTTP/1.1\r\nConnection: close\r\n\r\n", b"405"),
                        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(60) + b"\r\n\r\n", b"400")]:  # TLS
        answer = server.raw(raw)
        assert answer.split(b" ")[1] == status, (raw[:60], answer[:200])
        assert b"etc/passwd" not in answer or b"no such path" in answer
    assert server.json("GET", "/healthz")[0] == 200


def test_body_over_the_limit_gets_413_before_it_is_read(mlp_exe):
    s = Served(mlp_exe, "--serve-max-body", "1000")
    try:
        big = json.dumps({"inputs": {"features": [[0.5] * 32] * 40}}).encode()
        assert len(big) > 1000
        status, _, body = s.request("POST", "/v1/classify", big)
        assert status == 413 and b"the limit is 1,000" in body
        assert s.json("POST", "/v1/classify", {"inputs": {"features": [[0.5] * 32]}})[0] == 200
    finally:
        s.stop()


def test_keep_alive_serves_several_requests_on_one_connection(server):
    c = server.connection()
    try:
        for _ in range(5):
            c.request("POST", "/v1/classify", json.dumps({"inputs": {"features": [[0.1] * 32]}}))
            r = c.getresponse()
            assert r.status == 200 and r.getheader("Connection") == "keep-alive"
            r.read()
    finally:
        c.close()


def test_a_hundred_concurrent_clients_get_the_same_answers(server, mlp_exe, tmp_path):
    xs = [np.random.default_rng(i).standard_normal((1, 32)).astype(np.float32) for i in range(100)]
    barrier = threading.Barrier(100)

    def ask(x):
        barrier.wait(30)
        return server.json("POST", "/v1/classify", {"inputs": {"features": x.tolist()}})

    with ThreadPoolExecutor(100) as pool:
        answers = list(pool.map(ask, xs))
    assert all(status == 200 for status, _ in answers)
    expected, _ = _cli(mlp_exe, np.concatenate(xs), tmp_path)  # one batch through the CLI: row by row the same
    got = np.concatenate([np.array(r["outputs"]["logits"], np.float32) for _, r in answers])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_client_that_never_reads_blocks_nobody(server):
    stuck = socket.create_connection((server.host, server.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    request = b"GET /v1/info HTTP/1.1\r\nHost: x\r\n\r\n"
    stuck.sendall(request * 2000)  # thousands of answers nobody reads: its thread blocks on a full socket
    slow = socket.create_connection((server.host, server.port))
    slow.sendall(b"GET /healthz HTTP/1.1\r\n")  # half a request, never finished
    try:
        for _ in range(20):
            assert server.json("POST", "/v1/classify", {"inputs": {"features": [[0.2] * 32]}})[0] == 200
    finally:
        stuck.close()
        slow.close()


def test_token_is_needed_when_set(mlp_exe):
    s = Served(mlp_exe, "--serve-token", "s3cret")
    try:
        assert s.request("GET", "/healthz")[0] == 401
        assert s.request("GET", "/healthz", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert s.request("GET", "/healthz", headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert "(token required)" in s.stderr
    finally:
        s.stop()
    kept = {k: os.environ[k] for k in ("TMPDIR", "HOME") if k in os.environ}  # where the onefile unpacks
    env_served = Served(mlp_exe, env={"EDGEPACK_SERVE_TOKEN": "fromenv", "PATH": "/usr/bin:/bin", **kept})
    try:
        assert env_served.request("GET", "/v1/info")[0] == 401
        assert env_served.request("GET", "/v1/info", headers={"Authorization": "Bearer fromenv"})[0] == 200
    finally:
        env_served.stop()


def test_unix_socket(mlp_exe, tmp_path):
    path = tmp_path / "mlp.sock"
    s = Served(mlp_exe, serve=f"unix:{path}")
    try:
        status, r = s.json("POST", "/v1/classify", {"inputs": {"features": [[0.3] * 32]}})
        assert status == 200 and len(r["outputs"]["logits"][0]) == 10
    finally:
        code, err = s.stop()
    assert code == 0 and not path.exists(), err


def test_a_non_loopback_address_warns(mlp_exe):
    s = Served(mlp_exe, serve="0.0.0.0:0")
    try:
        assert "reachable from other machines" in s.stderr and "--serve-token" in s.stderr
    finally:
        s.stop()


@pytest.mark.parametrize("args,words", [(["--serve", "nope"], "give [HOST:]PORT"),
                                        (["--serve", "example.com:80"], "is no IP address"),
                                        (["--serve", "0", "--input", "x.npy"], "give it without --input"),
                                        (["--serve-token", "t", "--bench", "3"], "--serve-token goes with --serve")])
def test_bad_serve_flags_get_one_line(mlp_exe, args, words):
    r = subprocess.run([str(mlp_exe), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and words in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


def test_a_port_in_use_gets_one_line(mlp_exe):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        r = subprocess.run([str(mlp_exe), "--serve", f"127.0.0.1:{taken.getsockname()[1]}"], capture_output=True,
                           text=True, timeout=60)
    finally:
        taken.close()
    assert r.returncode == 2 and "cannot listen there (Address already in use)" in r.stderr, r.stderr


def test_sigterm_closes_connections_and_exits_0_with_a_summary(mlp_exe):
    s = Served(mlp_exe)
    idle = s.connection()
    idle.request("GET", "/healthz")
    idle.getresponse().read()  # an open keep-alive connection at the moment of SIGTERM
    assert s.json("POST", "/v1/classify", {"inputs": {"features": [[0.0] * 32]}})[0] == 200
    code, err = s.stop()
    idle.close()
    assert code == 0 and "stopped: served 1 classification(s), 0 failed" in err and "Traceback" not in err


def test_a_browser_gets_the_token_as_a_cookie(mlp_exe):
    s = Served(mlp_exe, "--serve-token", "k1")
    try:
        assert s.request("GET", "/?token=wrong")[0] == 401
        status, headers, _ = s.request("GET", "/?token=k1")
        assert status == 303 and headers["Location"] == "/"
        cookie = headers["Set-Cookie"].split(";")[0]
        assert "HttpOnly" in headers["Set-Cookie"] and cookie == "edgepack_token=k1"
        assert s.request("GET", "/healthz", headers={"Cookie": cookie})[0] == 200
    finally:
        s.stop()


@pytest.fixture(scope="module")
def fragile_exe(models, tmp_path_factory):
    """x float32[1, n] reshaped in halves: any n passes the input checks, an odd n fails inside onnxruntime."""
    from tests.conftest import edge

    work = tmp_path_factory.mktemp("fragile")
    np.savez(work / "eval.npz", x=np.ones((4, 1, 6), np.float32))
    edge("build", models("fragile-reshape"), "-o", work / "fragile", "--eval", work / "eval.npz")
    return work / "fragile"


def test_a_model_error_is_a_500_and_the_server_goes_on(fragile_exe):
    s = Served(fragile_exe)
    try:
        status, r = s.json("POST", "/v1/classify", {"inputs": {"x": [[1, 2, 3, 4, 5]]}})
        assert status == 500 and "Reshape" in r["error"] and "\n" not in r["error"], r
        status, r = s.json("POST", "/v1/classify", {"inputs": {"x": [[1, 2, 3, 4]]}})
        assert status == 200 and r["outputs"]["y"] == [[3.0, 7.0]]
    finally:
        code, err = s.stop()
    assert code == 0 and "stopped: served 1 classification(s), 1 failed" in err and "Traceback" not in err


def test_a_full_reader_queue_drops_and_counts_without_waiting():
    """The event hub itself (the code in every voice executable): publishing to a reader that never reads
    returns at once, drops what its queue cannot hold, counts it and tells the reader."""
    import time

    from edge.runtime.serve.events import QUEUE_EVENTS, Hub

    hub = Hub()
    stuck = hub.route(None).stream
    assert next(stuck) == b"retry: 2000\n\n"  # subscribed; now it reads nothing more
    t = time.perf_counter()
    for i in range(QUEUE_EVENTS + 500):
        hub.publish("level", {"i": i})
    assert time.perf_counter() - t < 5  # no wait on the reader (a generous bound, not a benchmark)
    assert hub.dropped == 500 and hub.readers == 1
    events = [next(stuck) for _ in range(QUEUE_EVENTS)]
    assert b'"i":0' in events[0] and b'"dropped_before":500' in events[0]
    hub.publish("detection", {"label": "go"})
    assert b"event: detection" in next(stuck)
    hub.close()
    assert list(stuck) == [] and hub.readers == 0
