"""Limits at the HTTP edge (issue 11, point 2): body sizes per route class, JSON depth, strings,
UTF-8 and numbers, header, URL and query bounds. Every JSON route of every service is swept
with each kind of bad body, with and without a token: always a 4xx in the service's own error
shape, never a 500, and not one row written. The findings of the issue each have a test here
that failed on the code before the limits (named test_finding_*)."""

from __future__ import annotations

import base64
import json
import re
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cirrus.api.app import create_app
from cirrus.api.limits import json_depth, parse_json
from cirrus.config import Settings
from cirrus.db.models import Base, Image, Network
from cirrus.errors import BadRequest
from tests.e2e.conftest import AllInOne, start_all_in_one, stop_all_in_one
from tests.threads import run_threads

WRITE_METHODS = ("POST", "PUT", "PATCH")
SOME_ID = "00000000-0000-4000-8000-000000000000"
DEFAULTS = Settings()


def json_routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route that takes a JSON body, from the app's own routing
    table: every service (identity, compute, image, network, cirrus admin)."""
    found = []
    for mount in app.routes:
        for route in getattr(mount.app, "routes", ()):
            for method in getattr(route, "handled_methods", ()):
                if method in WRITE_METHODS:
                    path = re.sub(r"\{[^}]+\}", SOME_ID, route.path)
                    found.append((method, mount.path + path))
    assert len(found) > 40, "the routing table was not found"
    return sorted(set(found))


def service_shape_ok(path: str, status: int, body: dict) -> bool:
    """The error document of the service that `path` belongs to (cirrus/api/errors.py)."""
    if path.startswith("/network"):
        return set(body) == {"NeutronError"} and "message" in body["NeutronError"]
    if path.startswith(("/compute", "/volume")):  # Cinder's shape is Nova's
        (name, inner), = body.items()
        return inner["code"] == status and inner["message"]
    if path.startswith("/image"):
        return body["code"] == status and body["error"]["code"] == status
    return body["error"]["code"] == status and body["error"]["message"]


def row_counts(cloud) -> dict[str, int]:
    with cloud.db.reader() as s:
        return {table.name: s.scalar(select(func.count()).select_from(table))
                for table in Base.metadata.sorted_tables}


@pytest.fixture
def app(cloud):
    return create_app(cloud)


def test_every_service_has_json_routes(app) -> None:
    routes = json_routes(app)
    for prefix in ("/identity/", "/compute/", "/image/", "/network/", "/volume/", "/cirrus/"):
        assert any(path.startswith(prefix) for _, path in routes), prefix
    assert len(routes) > 40


# ---------------------------------------------------------------- the sweep

DEEP = b"[" * 5000 + b"]" * 5000
BAD_BODIES = {
    "deeply nested arrays": DEEP,
    "deeply nested objects": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "nested just over the limit": b"[" * (DEFAULTS.max_json_depth + 1)
                                  + b"]" * (DEFAULTS.max_json_depth + 1),
    "lone high surrogate": b'{"name": "\\ud800"}',
    "lone low surrogate": b'{"name": "a\\udfffb"}',
    "surrogate encoded in UTF-8": b'{"name": "\xed\xa0\x80"}',
    "invalid UTF-8": b'{"name": "\xff\xfe"}',
    "integer 2^64": b'{"n": 18446744073709551616}',
    "integer 2^63": b'{"n": 9223372036854775808}',
    "integer below -2^63": b'{"n": -9223372036854775809}',
    "huge integer": b'{"n": ' + b"9" * 4000 + b"}",
    "float beyond 64 bits": b'{"n": 1e19}',
    "string too long": b'{"s": "' + b"x" * (DEFAULTS.max_json_string_length + 1) + b'"}',
    "key too long": b'{"' + b"k" * (DEFAULTS.max_json_string_length + 1) + b'": 1}',
}


@pytest.mark.parametrize("kind", sorted(BAD_BODIES))
def test_bad_json_bodies_are_4xx_on_every_route_and_write_nothing(api, app, cloud, admin,
                                                                  kind) -> None:
    body = BAD_BODIES[kind]
    before = row_counts(cloud)
    statuses: dict[int, int] = {}
    for method, path in json_routes(app):
        for headers in ({}, admin.headers):
            r = api.request(method, path, content=body,
                            headers={**headers, "Content-Type": "application/json",
                                     "OpenStack-API-Version": "compute 2.60"})
            assert 400 <= r.status_code < 500, (kind, method, path, r.status_code, r.text)
            assert service_shape_ok(path, r.status_code, r.json()), (path, r.text)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if not headers:  # refused unread (401), or parsed and refused (the token route)
                assert r.status_code in (400, 401, 405), (method, path, r.status_code)
    assert statuses.get(400, 0) > 20, statuses  # the body was parsed and refused, not just 404s
    assert row_counts(cloud) == before


def test_known_create_routes_answer_400_for_each_bad_body(api, admin) -> None:
    creates = ["/identity/v3/users", "/identity/v3/projects", "/compute/v2.1/flavors",
               "/compute/v2.1/os-keypairs", "/image/v2/images", "/network/v2.0/networks",
               "/network/v2.0/ports", "/network/v2.0/security-groups"]
    for kind, body in BAD_BODIES.items():
        for path in creates:
            r = api.post(path, content=body, headers={**admin.headers,
                                                     "Content-Type": "application/json"})
            assert r.status_code == 400, (kind, path, r.status_code, r.text)
    r = api.post("/identity/v3/auth/tokens", content=BAD_BODIES["lone high surrogate"])
    assert r.status_code == 400


def test_oversized_bodies_are_413_on_every_route_with_and_without_token(api, app, cloud,
                                                                        admin) -> None:
    limit = cloud.settings.max_json_body_size
    body = b'{"a": "' + b"x" * limit + b'"}'
    before = row_counts(cloud)
    for method, path in json_routes(app):
        for headers in ({}, admin.headers):
            r = api.request(method, path, content=body,
                            headers={**headers, "Content-Type": "application/json"})
            assert r.status_code == 413, (method, path, r.status_code, r.text)
            assert service_shape_ok(path, 413, r.json()), (path, r.text)
            assert str(limit) in r.text
    assert row_counts(cloud) == before


def test_oversized_chunked_body_is_counted_as_it_arrives(api, cloud, admin) -> None:
    """No Content-Length: the bytes are counted as they come and refused past the limit."""
    cloud.settings.max_json_body_size = 10_000
    sent = []

    def chunks() -> Iterator[bytes]:
        yield b'{"network": {"name": "'
        for _ in range(100):
            sent.append(1)
            yield b"x" * 1000
        yield b'"}}'

    r = api.post("/network/v2.0/networks", content=chunks(),
                 headers={**admin.headers, "Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["NeutronError"]["type"] == "HTTPRequestEntityTooLarge"
    assert r.headers["connection"] == "close"
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Network)) == 0
    # Just under the limit is taken, chunked too.
    padded = b'{"network": {"name": "ok"}' + b" " * 9000 + b"}"
    r = api.post("/network/v2.0/networks", content=iter([padded[:5000], padded[5000:]]),
                 headers={**admin.headers, "Content-Type": "application/json"})
    assert r.status_code == 201, r.text


def test_bad_content_length_is_400(api, admin) -> None:
    for value in ("abc", "-1", "99999999999999999999999"):
        r = api.post("/network/v2.0/networks", content=b"{}",
                     headers={**admin.headers, "Content-Length": value})
        assert r.status_code in (400, 413), (value, r.status_code)
        assert r.status_code != 500


def test_the_largest_legitimate_server_create_fits_the_default_limit(api, cloud,
                                                                     member) -> None:
    """user_data of 65535 base64 characters, five personality files of 10240 bytes (Nova's
    default injected-file quota), 128 metadata items of 255 characters, each written with
    JSON escapes for characters outside the BMP (12 bytes each), 50 tags: under the default
    max_json_body_size, and not refused by it."""
    astral = "\U0001F600" * 255
    body = {"server": {
        "name": astral, "flavorRef": "1", "imageRef": SOME_ID, "networks": "none",
        "user_data": base64.b64encode(b"u" * 49149).decode()[:65535],
        "personality": [{"path": f"/etc/file{i}" + "p" * 240,
                         "contents": base64.b64encode(b"c" * 10240).decode()} for i in range(5)],
        "metadata": {f"{i:03d}" + "k" * 252: astral for i in range(128)},
        "description": astral,
        "tags": [f"{i:02d}" + "t" * 58 for i in range(50)],
    }}
    raw = json.dumps(body).encode()  # ensure_ascii, as the Python clients send
    assert len(raw) > 500_000
    assert len(raw) < DEFAULTS.max_json_body_size
    r = api.post("/compute/v2.1/servers", content=raw,
                 headers={**member.compute("2.56"), "Content-Type": "application/json"})
    assert r.status_code != 413 and r.status_code < 500, r.text


# ---------------------------------------------------------------- headers, URL, query


def test_long_token_header_is_401_before_authentication(api) -> None:
    token = "a" * (DEFAULTS.max_token_size + 1)
    r = api.get("/compute/v2.1/servers", headers={"X-Auth-Token": token})
    assert r.status_code == 401
    assert "X-Auth-Token" in r.json()["unauthorized"]["message"]
    r = api.get("/identity/v3/auth/tokens", headers={"X-Auth-Token": "a",
                                                     "X-Subject-Token": token})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == 401


def test_header_line_and_total_header_limits_are_431(api, admin) -> None:
    r = api.get("/network/v2.0/networks",
                headers={**admin.headers, "X-Long": "v" * (DEFAULTS.max_header_line + 1)})
    assert r.status_code == 431
    assert r.json()["NeutronError"]["type"] == "HTTPRequestHeaderFieldsTooLarge"
    many = {f"X-H{i}": "v" * 1000 for i in range(DEFAULTS.max_header_size // 1000 + 1)}
    r = api.get("/network/v2.0/networks", headers={**admin.headers, **many})
    assert r.status_code == 431
    r = api.get("/network/v2.0/networks", headers={**admin.headers, "X-Fine": "v" * 8000})
    assert r.status_code == 200


def test_long_url_is_414_and_too_many_query_parameters_400(api, admin) -> None:
    r = api.get("/image/v2/images?name=" + "n" * DEFAULTS.max_url_length, headers=admin.headers)
    assert r.status_code == 414
    assert r.json()["code"] == 414
    query = "&".join(f"tag=t{i}" for i in range(DEFAULTS.max_query_params + 1))
    r = api.get(f"/image/v2/images?{query}", headers=admin.headers)
    assert r.status_code == 400
    assert "parameters" in r.json()["message"]
    query = "&".join(f"tag=t{i}" for i in range(50))
    assert api.get(f"/image/v2/images?{query}", headers=admin.headers).status_code == 200


def test_huge_integers_in_query_filters_are_400(api, admin) -> None:
    for query in ("mtu=" + "9" * 5000, "mtu=99999999999999999999", "limit=" + "9" * 5000,
                  "limit=99999999999999999999"):
        r = api.get(f"/network/v2.0/networks?{query}", headers=admin.headers)
        assert r.status_code == 400, (query[:30], r.status_code, r.text)
    # Before: a 500 (OverflowError binding the size to SQLite).
    for query in ("size_min=" + "9" * 25, "size_max=9223372036854775808", "size_min=" + "9" * 5000):
        r = api.get(f"/image/v2/images?{query}", headers=admin.headers)
        assert r.status_code == 400, (query[:30], r.status_code, r.text)
    r = api.get("/image/v2/images?size_max=9223372036854775807", headers=admin.headers)
    assert r.status_code == 200


# ---------------------------------------------------------------- findings of the issue


def test_finding_deep_nesting_on_the_token_route_is_400(api) -> None:
    """Before: depth ~3,000 gave a 500 (RecursionError), unauthenticated."""
    r = api.post("/identity/v3/auth/tokens", content=b"[" * 3000 + b"]" * 3000,
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert "nests deeper" in r.json()["error"]["message"]


def test_finding_lone_surrogate_in_a_network_name_is_400(api, cloud, admin) -> None:
    """Before: a 500 (UnicodeEncodeError writing the row)."""
    r = api.post("/network/v2.0/networks", content=b'{"network": {"name": "x\\ud800"}}',
                 headers={**admin.headers, "Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["NeutronError"]["type"] == "HTTPBadRequest"
    # A proper pair is a character like any other.
    r = api.post("/network/v2.0/networks", content=b'{"network": {"name": "x\\ud83d\\ude00"}}',
                 headers={**admin.headers, "Content-Type": "application/json"})
    assert r.status_code == 201
    assert r.json()["network"]["name"] == "x\U0001F600"
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Network)) == 1


@pytest.mark.parametrize(("network_type", "value"), [
    ("vlan", 2**64), ("vlan", 2**63), ("vlan", 4095), ("vlan", 0), ("vxlan", 2**24),
    ("gre", 2**31), (None, 2**40), ("vlan", "18446744073709551616"),
])
def test_finding_segmentation_id_out_of_range_is_400(api, cloud, admin, network_type,
                                                     value) -> None:
    """Before: 2^64 gave a 500 (OverflowError writing the row)."""
    network = {"name": "seg", "provider:segmentation_id": value}
    if network_type:
        network["provider:network_type"] = network_type
    r = api.post("/network/v2.0/networks", json={"network": network}, headers=admin.headers)
    assert r.status_code == 400, r.text
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Network)) == 0
    cloud.settings.network_vlan_ranges = ["physnet1"]  # l2: a VLAN id needs a known physnet
    ok = {"name": "seg", "provider:network_type": "vlan", "provider:physical_network": "physnet1",
          "provider:segmentation_id": 4094}
    r = api.post("/network/v2.0/networks", json={"network": ok}, headers=admin.headers)
    assert r.status_code == 201
    assert r.json()["network"]["provider:segmentation_id"] == 4094


def _queued_image(api, headers, disk_format: str = "qcow2") -> str:
    r = api.post("/image/v2/images", json={"name": "i", "disk_format": disk_format,
                                           "container_format": "bare"}, headers=headers)
    assert r.status_code == 201
    return r.json()["id"]


def _image_files(cloud) -> list[Path]:
    root = Path(cloud.settings.effective_image_dir)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_finding_qcow2_header_with_a_2_64_virtual_size_is_400(api, cloud, admin) -> None:
    """Before: a 500 (OverflowError storing virtual_size). Now the header is refused as soon
    as it arrives; the image is queued again and no file is left behind."""
    image_id = _queued_image(api, admin.headers)
    header = b"QFI\xfb" + struct.pack(">IQIIQ", 3, 0, 0, 16, 2**64 - 1)
    r = api.put(f"/image/v2/images/{image_id}/file", content=header + b"\0" * 4096,
                headers={**admin.headers, "Content-Type": "application/octet-stream"})
    assert r.status_code == 400, r.text
    assert "virtual size" in r.json()["message"]
    image = api.get(f"/image/v2/images/{image_id}", headers=admin.headers).json()
    assert image["status"] == "queued" and image["size"] is None
    assert _image_files(cloud) == []
    # The same image takes a sound qcow2 afterwards.
    good = b"QFI\xfb" + struct.pack(">IQIIQ", 3, 0, 0, 16, 2**30)
    r = api.put(f"/image/v2/images/{image_id}/file", content=good + b"\0" * 4096,
                headers={**admin.headers, "Content-Type": "application/octet-stream"})
    assert r.status_code == 204
    image = api.get(f"/image/v2/images/{image_id}", headers=admin.headers).json()
    assert image["status"] == "active" and image["virtual_size"] == 2**30


def test_image_upload_over_the_cap_is_413_and_leaves_the_image_queued(api, cloud,
                                                                      admin) -> None:
    cloud.settings.image_size_cap = 1 << 20
    headers = {**admin.headers, "Content-Type": "application/octet-stream"}
    # Declared too large: refused before a byte is read.
    image_id = _queued_image(api, admin.headers, "raw")
    r = api.put(f"/image/v2/images/{image_id}/file", content=b"d" * ((1 << 20) + 1),
                headers=headers)
    assert r.status_code == 413
    assert r.json()["code"] == 413 and str(1 << 20) in r.json()["message"]
    # Streamed without a length: stopped once past the cap, the staging file removed.
    sent = []

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            sent.append(1)
            yield b"d" * 65536

    r = api.put(f"/image/v2/images/{image_id}/file", content=chunks(), headers=headers)
    assert r.status_code == 413, r.text
    assert "image_size_cap" in r.json()["message"]
    image = api.get(f"/image/v2/images/{image_id}", headers=admin.headers).json()
    assert image["status"] == "queued" and image["size"] is None
    assert _image_files(cloud) == []
    # Exactly the cap is fine.
    r = api.put(f"/image/v2/images/{image_id}/file", content=b"d" * (1 << 20), headers=headers)
    assert r.status_code == 204
    image = api.get(f"/image/v2/images/{image_id}", headers=admin.headers).json()
    assert image["status"] == "active" and image["size"] == 1 << 20


def test_image_create_with_an_overflowing_number_writes_nothing(api, cloud, admin) -> None:
    r = api.post("/image/v2/images", content=b'{"name": "n", "min_ram": 18446744073709551616}',
                 headers={**admin.headers, "Content-Type": "application/json"})
    assert r.status_code == 400
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Image)) == 0


# ---------------------------------------------------------------- the parser itself


def test_json_depth_ignores_brackets_in_strings_and_never_recurses() -> None:
    assert json_depth(b"{}") == 1
    assert json_depth(b'{"a": [1, {"b": "[[[[{{{"}]}') == 3
    assert json_depth(b'["\\"[[[", "\\\\", [[]]]') == 3
    assert json_depth(b"[" * 200_000) == 200_000
    assert json_depth(b'"unterminated [[[') == 0


def test_json_checks_stay_linear_on_hostile_input() -> None:
    """A pathological body of the largest size is judged in linear time: well under a second
    on an idle machine (a string pattern that could fail would rescan from every later quote:
    quadratic, minutes for these sizes). The bound is this thread's CPU time, with room for a
    loaded 2-core machine; the speed itself is the benchmarks' business."""
    settings = Settings()
    for raw in (b'"\\' * 500_000, b'"' + b'\\"' * 500_000, b"[" * 1_000_000,
                b"[" + b'"a",' * 250_000 + b"1]", b"[" + b"1e5," * 250_000 + b"1]"):
        started = time.thread_time()
        try:
            parse_json(raw, settings)
        except BadRequest:
            pass
        assert time.thread_time() - started < 5.0, raw[:20]


def test_json_numbers_within_64_bits_and_ordinary_documents_pass() -> None:
    settings = Settings()
    doc = {"a": [2**63 - 1, -(2**63), 1.5, "\U0001F600", None, True], "b": {"c": "d"}}
    assert parse_json(json.dumps(doc).encode(), settings) == doc
    for raw in (b"NaN", b"Infinity", b"1e400", b"\xef\xbb\xbf{}", b"{} x"):
        with pytest.raises(BadRequest):
            parse_json(raw, settings)


# ---------------------------------------------------------------- a real server, real sockets


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AllInOne]:
    srv = start_all_in_one(tmp_path_factory.mktemp("limits") / "data")
    yield srv
    assert stop_all_in_one(srv) == 0, srv.log_tail()


def _address(srv: AllInOne) -> tuple[str, int]:
    host, port = srv.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _admin_token(srv: AllInOne) -> str:
    auth = yaml.safe_load(srv.clouds_yaml.read_text())["clouds"]["cirrus"]["auth"]
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": auth["username"], "password": auth["password"],
        "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": auth["project_name"], "domain": {"name": "Default"}}}}}
    r = httpx.post(f"{srv.url}/identity/v3/auth/tokens", json=body, timeout=10)
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"]


def _read_response(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)content-length: *(\d+)", head)
    while match and len(rest) < int(match.group(1)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest


def test_finding_unauthenticated_50_mb_body_is_answered_without_being_read(server) -> None:
    """Before: the body was read whole before authentication. Now a declared 50 MB answers
    413 right after the headers, though only 64 KiB were sent."""
    for token in ("", _admin_token(server)):
        with socket.create_connection(_address(server)) as sock:
            auth = f"X-Auth-Token: {token}\r\n" if token else ""
            sock.sendall(f"POST /network/v2.0/networks HTTP/1.1\r\nHost: x\r\n{auth}"
                         "Content-Type: application/json\r\n"
                         f"Content-Length: {50 * 2**20}\r\n\r\n".encode() + b"[" * 65536)
            answer = _read_response(sock)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"HTTPRequestEntityTooLarge" in answer


def test_finding_ten_unauthenticated_50_mb_posts_do_not_grow_the_process(server) -> None:
    """Before: ten 50 MB POSTs without a token took the process from 135 MB to 718 MB. Sent
    chunked (no Content-Length to refuse up front) and concurrently: the answer is a 401
    before the body is read, and the rest of each body is discarded as it arrives."""
    process = psutil.Process(server.process.pid)
    before = process.memory_info().rss
    chunk = b"x" * (1 << 20)
    framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    answers: list[bytes] = []

    def post() -> None:
        with socket.create_connection(_address(server)) as sock:
            sock.sendall(b"POST /compute/v2.1/servers HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(50):
                sock.sendall(framed)
            sock.sendall(b"0\r\n\r\n")
            answers.append(_read_response(sock, 60))

    run_threads([post] * 10, timeout=120)
    assert len(answers) == 10
    assert all(a.startswith(b"HTTP/1.1 401 ") for a in answers), answers[0][:200]
    grown = (process.memory_info().rss - before) / 2**20
    assert grown < 60, f"the API process grew by {grown:.0f} MiB"


def test_an_endless_header_is_cut_off_while_being_parsed(server) -> None:
    """uvicorn and httptools set no bound on a request's head (a 20 MB header line was read
    whole): the bounded protocol answers 431 and closes once the limit has arrived."""
    limit = DEFAULTS.max_url_length + DEFAULTS.max_header_size
    with socket.create_connection(_address(server)) as sock:
        sock.sendall(b"GET /compute/v2.1/servers HTTP/1.1\r\nHost: x\r\nX-Long: "
                     + b"a" * (limit + 65536))
        answer = _read_response(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"computeFault" in answer
    # A head within the limits goes through the middleware's finer checks.
    with socket.create_connection(_address(server)) as sock:
        sock.sendall(b"GET /compute/v2.1/servers HTTP/1.1\r\nHost: x\r\nX-Auth-Token: "
                     + b"a" * (DEFAULTS.max_token_size + 1) + b"\r\n\r\n")
        answer = _read_response(sock)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    assert b"X-Auth-Token" in answer
    assert re.search(rb"(?i)x-openstack-request-id: req-", answer)
    # And the server still serves.
    assert httpx.get(f"{server.url}/identity/v3", timeout=10).status_code == 200


def _depth(value: object) -> int:
    """The nesting depth of a parsed document (the recursive definition json_depth
    computes without recursion)."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


_tricky_text = st.text(alphabet=st.sampled_from(list('[]{}"\\/ ax\u00e9\U0001F600\n')),
                       max_size=12)
_documents = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | _tricky_text,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(_tricky_text, children, max_size=3),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(doc=_documents, ascii_only=st.booleans())
def test_json_depth_matches_the_documents_structure(doc, ascii_only: bool) -> None:
    raw = json.dumps(doc, ensure_ascii=ascii_only).encode()
    assert json_depth(raw) == _depth(doc)
    if _depth(doc) <= DEFAULTS.max_json_depth:
        assert parse_json(raw, DEFAULTS) == doc


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=64) | st.builds(lambda d: json.dumps(d).encode()[:-1], _documents))
def test_any_bytes_give_a_value_or_a_bad_request(raw: bytes) -> None:
    try:
        parse_json(raw, DEFAULTS)
    except BadRequest:
        pass
