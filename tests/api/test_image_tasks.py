"""Glance tasks (/v2/tasks, type `import`): admin-only, and never a fetch of a URL the
operator did not allow (server-side request forgery)."""

from __future__ import annotations

import http.server
import threading

import pytest

from cirrus.db.models import Image, ImageTask
from cirrus.storage.image_tasks import url_allowed

TASKS = "/image/v2/tasks"


def task_body(url: str) -> dict:
    return {"type": "import", "input": {
        "import_from": url, "import_from_format": "qcow2",
        "image_properties": {"container_format": "bare", "disk_format": "qcow2"}}}


@pytest.fixture
def web_server():
    """A real HTTP server on localhost recording every request it gets."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"secret")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", hits
    server.shutdown()


def count(cloud, model) -> int:
    with cloud.db.reader() as s:
        return s.query(model).count()


def test_import_task_from_unallowed_url_fails_without_fetching(api, admin, cloud, web_server):
    base, hits = web_server
    images_before = count(cloud, Image)
    r = api.post(TASKS, json=task_body(f"{base}/latest/meta-data"), headers=admin.headers)
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["status"] == "failure" and task["type"] == "import"
    assert "image_import_allowed_url_prefixes" in task["message"]
    assert task["self"] == f"/v2/tasks/{task['id']}" and task["schema"] == "/v2/schemas/task"
    assert task["input"]["import_from"].startswith(base)
    shown = api.get(f"{TASKS}/{task['id']}", headers=admin.headers).json()
    assert shown["status"] == "failure" and shown["message"] == task["message"]
    listed = api.get(TASKS, headers=admin.headers).json()
    assert [t["id"] for t in listed["tasks"]] == [task["id"]]
    assert "input" not in listed["tasks"][0]
    assert api.get(f"{TASKS}?status=failure", headers=admin.headers).json()["tasks"]
    assert api.get(f"{TASKS}?status=success", headers=admin.headers).json()["tasks"] == []
    assert hits == [] and count(cloud, Image) == images_before


def test_allowed_url_still_not_fetched_and_says_why(api, admin, cloud, web_server):
    base, hits = web_server
    cloud.settings.image_import_allowed_url_prefixes = [f"{base}/images/"]
    r = api.post(TASKS, json=task_body(f"{base}/images/cirros.qcow2"), headers=admin.headers)
    assert r.status_code == 201 and r.json()["status"] == "failure"
    assert "not supported" in r.json()["message"]
    assert hits == []


@pytest.mark.parametrize("url,prefixes,allowed", [
    ("https://img.example.com/a.qcow2", [], False),
    ("https://img.example.com/a.qcow2", ["https://img.example.com"], True),
    ("https://img.example.com.evil.net/a", ["https://img.example.com"], False),
    ("https://img.example.com/a", ["https://img.example.com/"], True),
    ("file:///etc/passwd", ["file:///"], False),
    ("ftp://img.example.com/a", ["ftp://img.example.com/"], False),
])
def test_url_allow_list(url, prefixes, allowed):
    assert url_allowed(url, prefixes) is allowed


@pytest.mark.parametrize("who", ["member", "reader", "other_member"])
def test_tasks_are_admin_only(api, admin, request, who, cloud):
    caller = request.getfixturevalue(who)
    task = api.post(TASKS, json=task_body("http://x.example/a"), headers=admin.headers).json()
    before = count(cloud, ImageTask)
    r = api.post(TASKS, json=task_body("http://x.example/a"), headers=caller.headers)
    assert r.status_code == 403
    assert count(cloud, ImageTask) == before
    for url in (TASKS, f"{TASKS}/{task['id']}", "/image/v2/schemas/task",
                "/image/v2/schemas/tasks"):
        assert api.get(url, headers=caller.headers).status_code == 403, url


def test_task_schemas(api, admin):
    assert api.get("/image/v2/schemas/task", headers=admin.headers).json()["name"] == "task"
    assert api.get("/image/v2/schemas/tasks", headers=admin.headers).json()["name"] == "tasks"


@pytest.mark.parametrize("body,field", [
    ({"type": "export", "input": task_body("http://a/")["input"]}, "type"),
    ({"input": task_body("http://a/")["input"]}, "type"),
    ({"type": "import"}, "input"),
    ({"type": "import", "input": {"import_from_format": "qcow2", "image_properties": {}}},
     "import_from"),
    ({"type": "import", "input": {**task_body("http://a/")["input"], "import_from": 7}},
     "import_from"),
    ({"type": "import", "input": {**task_body("http://a/")["input"], "image_properties": []}},
     "image_properties"),
    ({**task_body("http://a/"), "extra": 1}, "extra"),
])
def test_bad_task_input_is_400_naming_the_field(api, admin, cloud, body, field):
    r = api.post(TASKS, json=body, headers=admin.headers)
    assert r.status_code == 400 and field in r.text, r.text
    assert count(cloud, ImageTask) == 0


def test_unknown_task_and_bad_list_query(api, admin):
    assert api.get(f"{TASKS}/nope", headers=admin.headers).status_code == 404
    assert api.get(f"{TASKS}/{'x' * 300}", headers=admin.headers).status_code == 404
    for query, field in (("status=done", "status"), ("type=export", "type"),
                         ("sort_dir=up", "sort_dir"), ("limit=-2", "limit"),
                         ("sort_key=id", "sort_key"), ("marker=nope", "")):
        r = api.get(f"{TASKS}?{query}", headers=admin.headers)
        assert r.status_code in (400, 404) and field in r.text, query


def test_an_images_tasks_are_listed_for_whoever_sees_the_image(api, admin, member, reader,
                                                              other_member, cloud):
    r = api.post("/image/v2/images", headers=member.headers,
                 json={"name": "own", "disk_format": "raw", "container_format": "bare"})
    image_id = r.json()["id"]
    url = f"/image/v2/images/{image_id}/tasks"
    for caller in (member, reader, admin):
        r = api.get(url, headers=caller.headers)
        assert r.status_code == 200 and r.json() == {"tasks": []}, r.text
    assert api.get(url, headers=other_member.headers).status_code == 404
    assert api.get("/image/v2/images/no-such-image/tasks", headers=admin.headers).status_code == 404

    def linked(s):  # a task whose result names the image (what a finished import records)
        s.add(ImageTask(id="5e6c0d2a-0d1e-4a57-9a43-6f3b1f6a1c2e", type="import",
                        status="success", owner=admin.project_id, input={},
                        result={"image_id": image_id}, message=""))

    cloud.db.run(linked)
    tasks = api.get(url, headers=admin.headers).json()["tasks"]
    assert [(t["id"], t["image_id"]) for t in tasks] == [
        ("5e6c0d2a-0d1e-4a57-9a43-6f3b1f6a1c2e", image_id)]
    assert api.get(url, headers=member.headers).json() == {"tasks": []}  # another owner's task
