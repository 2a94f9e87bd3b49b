def test_app_starts_and_unknown_path_is_404(api):
    r = api.get("/compute/nope")
    assert r.status_code == 404
    assert r.json()["itemNotFound"]["code"] == 404
    assert r.headers["x-openstack-request-id"].startswith("req-")
    assert r.headers["x-compute-request-id"] == r.headers["x-openstack-request-id"]
