"""Glance metadata definitions: namespaces, objects, properties, tags, resource type
associations and their schemas; Glance's default policy (admins write; readers read public
namespaces and their own project's)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cirrus.db.models import MetadefNamespace, MetadefObject, MetadefTag

NS = "/image/v2/metadefs/namespaces"
RT = "/image/v2/metadefs/resource_types"


def make_ns(api, admin, name="ns1", **fields):
    body = {"namespace": name, "visibility": "public", "description": "d", **fields}
    r = api.post(NS, json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def private_ns(api, admin, member):
    """A private namespace owned by project-a (the member's and reader's project)."""
    return make_ns(api, admin, "private-a", visibility="private", owner=member.project_id)


def count(cloud, model) -> int:
    with cloud.db.reader() as s:
        return s.query(model).count()


def test_namespace_lifecycle_as_tempest_does(api, admin):
    types = api.get(RT, headers=admin.headers).json()["resource_types"]
    assert types[0]["name"] == "OS::Glance::Image"
    body = make_ns(api, admin, "tempest-ns", display_name="Tempest NS", protected=True,
                   resource_type_associations=[{"name": types[0]["name"]}])
    assert body["namespace"] == "tempest-ns" and body["visibility"] == "public"
    assert body["protected"] is True and body["owner"] == admin.project_id
    assert body["self"] == "/v2/metadefs/namespaces/tempest-ns"
    assert body["schema"] == "/v2/schemas/metadefs/namespace"
    assert body["resource_type_associations"][0]["name"] == "OS::Glance::Image"
    listed = api.get(NS, headers=admin.headers).json()
    assert "tempest-ns" in [n["namespace"] for n in listed["namespaces"]]
    assert listed["schema"] == "/v2/schemas/metadefs/namespaces"
    # Protected: no delete.
    r = api.delete(f"{NS}/tempest-ns", headers=admin.headers)
    assert r.status_code == 403 and "protected" in r.text
    r = api.put(f"{NS}/tempest-ns", json={"namespace": "tempest-ns", "visibility": "private",
                                           "protected": False, "description": "Tempest",
                                           "display_name": "x"}, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert r.json()["visibility"] == "private" and r.json()["protected"] is False
    assert api.delete(f"{NS}/tempest-ns", headers=admin.headers).status_code == 204
    assert api.get(f"{NS}/tempest-ns", headers=admin.headers).status_code == 404


def test_namespace_visibility_for_readers(api, admin, member, reader, other_member,
                                          private_ns):
    make_ns(api, admin, "public-ns")
    make_ns(api, admin, "admin-private", visibility="private")
    for caller, expected in ((member, {"public-ns", "private-a"}),
                             (reader, {"public-ns", "private-a"}),
                             (other_member, {"public-ns"}),
                             (admin, {"public-ns", "private-a", "admin-private"})):
        r = api.get(NS, headers=caller.headers)
        assert r.status_code == 200, r.text
        assert {n["namespace"] for n in r.json()["namespaces"]} == expected
    assert api.get(f"{NS}/private-a", headers=reader.headers).status_code == 200
    for path in ("", "/objects", "/properties", "/tags", "/resource_types"):
        r = api.get(f"{NS}/private-a{path}", headers=other_member.headers)
        assert r.status_code == 404, (path, r.text)
    r = api.get(f"{NS}?visibility=private", headers=admin.headers)
    assert {n["namespace"] for n in r.json()["namespaces"]} == {"private-a", "admin-private"}


@pytest.mark.parametrize("who", ["member", "reader", "other_member"])
def test_only_admins_write(api, admin, request, who, private_ns):
    caller = request.getfixturevalue(who)
    make_ns(api, admin, "pub")
    make_ns(api, admin, "pub-x")
    api.post(f"{NS}/pub/objects", json={"name": "o"}, headers=admin.headers)
    api.post(f"{NS}/pub/tags/t", headers=admin.headers)
    api.post(f"{NS}/pub/properties", json={"name": "p", "title": "P", "type": "string"},
             headers=admin.headers)
    writes = [
        ("post", NS, {"namespace": "mine"}),
        ("put", f"{NS}/pub", {"namespace": "pub", "visibility": "private"}),
        ("delete", f"{NS}/pub-x", None),
        ("post", f"{NS}/pub/objects", {"name": "o2"}),
        ("put", f"{NS}/pub/objects/o", {"name": "o3"}),
        ("delete", f"{NS}/pub/objects/o", None),
        ("post", f"{NS}/pub/properties", {"name": "p2", "title": "P", "type": "string"}),
        ("put", f"{NS}/pub/properties/p", {"name": "p", "title": "Q", "type": "string"}),
        ("delete", f"{NS}/pub/properties/p", None),
        ("post", f"{NS}/pub/tags", {"tags": [{"name": "a"}]}),
        ("delete", f"{NS}/pub/tags", None),
        ("post", f"{NS}/pub/tags/t2", None),
        ("put", f"{NS}/pub/tags/t", {"name": "t3"}),
        ("delete", f"{NS}/pub/tags/t", None),
        ("post", f"{NS}/pub/resource_types", {"name": "OS::Nova::Flavor"}),
        ("delete", f"{NS}/pub/resource_types/OS::Nova::Flavor", None),
        ("post", f"{NS}/private-a/objects", {"name": "o"}),
    ]
    for method, url, body in writes:
        kwargs = {"json": body} if body is not None else {}
        r = getattr(api, method)(url, headers=caller.headers, **kwargs) if method != "delete" \
            else api.delete(url, headers=caller.headers)
        assert r.status_code == 403, (method, url, r.status_code, r.text)
    # Nothing changed.
    r = api.get(f"{NS}/pub", headers=admin.headers).json()
    assert r["visibility"] == "public"
    assert [o["name"] for o in r["objects"]] == ["o"]
    assert [t["name"] for t in r["tags"]] == ["t"]
    assert r["properties"]["p"]["title"] == "P"
    assert api.get(f"{NS}/pub-x", headers=admin.headers).status_code == 200
    # But everyone reads the public one.
    for path in ("", "/objects", "/objects/o", "/properties", "/properties/p", "/tags",
                 "/tags/t", "/resource_types"):
        assert api.get(f"{NS}/pub{path}", headers=caller.headers).status_code == 200, path
    assert api.get(RT, headers=caller.headers).status_code == 200


def test_objects_crud(api, admin, reader, private_ns):
    make_ns(api, admin)
    r = api.post(f"{NS}/ns1/objects", headers=admin.headers, json={
        "name": "obj", "description": "an object", "required": ["p"],
        "properties": {"p": {"title": "P", "type": "integer", "minimum": 1}}})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["self"] == "/v2/metadefs/namespaces/ns1/objects/obj"
    assert body["properties"]["p"]["minimum"] == 1 and body["required"] == ["p"]
    assert api.post(f"{NS}/ns1/objects", json={"name": "obj"},
                    headers=admin.headers).status_code == 409
    r = api.put(f"{NS}/ns1/objects/obj", json={"name": "renamed"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["name"] == "renamed"
    assert r.json()["properties"] == {}
    assert api.get(f"{NS}/ns1/objects/obj", headers=reader.headers).status_code == 404
    assert api.get(f"{NS}/ns1/objects/renamed", headers=reader.headers).json()["name"] \
        == "renamed"
    listed = api.get(f"{NS}/ns1/objects", headers=reader.headers).json()
    assert [o["name"] for o in listed["objects"]] == ["renamed"]
    assert api.delete(f"{NS}/ns1/objects/renamed", headers=admin.headers).status_code == 204
    assert api.get(f"{NS}/ns1/objects", headers=admin.headers).json()["objects"] == []


def test_properties_crud_as_tempest_does(api, admin):
    make_ns(api, admin)
    name = "OS::Glance::Image"
    assert api.post(f"{NS}/ns1/resource_types", json={"name": name},
                    headers=admin.headers).status_code == 201
    enum = ["xen", "qemu", "kvm"]
    r = api.post(f"{NS}/ns1/properties", headers=admin.headers,
                 json={"name": name, "title": "hv", "type": "string", "enum": enum})
    assert r.status_code == 201, r.text
    assert r.json() == {"name": name, "title": "hv", "type": "string", "enum": enum}
    assert api.get(f"{NS}/ns1/properties/{name}", headers=admin.headers).json()["name"] == name
    r = api.put(f"{NS}/ns1/properties/{name}", headers=admin.headers,
                json={"name": name, "title": "new", "type": "string", "enum": enum})
    assert r.status_code == 200 and r.json()["title"] == "new"
    listed = api.get(f"{NS}/ns1/properties", headers=admin.headers).json()
    assert listed["properties"] == {name: {"title": "new", "type": "string", "enum": enum}}
    assert api.delete(f"{NS}/ns1/properties/{name}", headers=admin.headers).status_code == 204
    assert api.get(f"{NS}/ns1/properties", headers=admin.headers).json()["properties"] == {}


def test_tags_bulk_and_single(api, admin, reader):
    make_ns(api, admin)
    r = api.post(f"{NS}/ns1/tags", json={"tags": [{"name": "a"}, {"name": "b"}]},
                 headers=admin.headers)
    assert r.status_code == 201 and r.json() == {"tags": [{"name": "a"}, {"name": "b"}]}
    # Bulk create replaces, unless asked to append.
    api.post(f"{NS}/ns1/tags", json={"tags": [{"name": "c"}]}, headers=admin.headers)
    assert [t["name"] for t in api.get(f"{NS}/ns1/tags", headers=reader.headers)
            .json()["tags"]] == ["c"]
    api.post(f"{NS}/ns1/tags", json={"tags": [{"name": "d"}]},
             headers={**admin.headers, "X-Openstack-Append": "True"})
    assert {t["name"] for t in api.get(f"{NS}/ns1/tags", headers=admin.headers)
            .json()["tags"]} == {"c", "d"}
    r = api.post(f"{NS}/ns1/tags/e", headers=admin.headers)
    assert r.status_code == 201 and r.json()["name"] == "e"
    assert api.post(f"{NS}/ns1/tags/e", headers=admin.headers).status_code == 409
    r = api.put(f"{NS}/ns1/tags/e", json={"name": "f"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["name"] == "f"
    assert api.get(f"{NS}/ns1/tags/f", headers=reader.headers).status_code == 200
    assert api.delete(f"{NS}/ns1/tags/f", headers=admin.headers).status_code == 204
    assert api.delete(f"{NS}/ns1/tags", headers=admin.headers).status_code == 204
    assert api.get(f"{NS}/ns1/tags", headers=admin.headers).json()["tags"] == []


def test_resource_type_associations(api, admin):
    make_ns(api, admin)
    r = api.post(f"{NS}/ns1/resource_types", headers=admin.headers,
                 json={"name": "OS::Nova::Flavor", "prefix": "hw:"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "OS::Nova::Flavor" and r.json()["prefix"] == "hw:"
    assert api.post(f"{NS}/ns1/resource_types", json={"name": "OS::Nova::Flavor"},
                    headers=admin.headers).status_code == 409
    assert api.post(f"{NS}/ns1/resource_types", json={"name": "OS::Made::Up"},
                    headers=admin.headers).status_code == 404
    listed = api.get(f"{NS}/ns1/resource_types", headers=admin.headers).json()
    assert [a["name"] for a in listed["resource_type_associations"]] == ["OS::Nova::Flavor"]
    r = api.get(f"{NS}?resource_types=OS::Nova::Flavor", headers=admin.headers)
    assert [n["namespace"] for n in r.json()["namespaces"]] == ["ns1"]
    assert api.delete(f"{NS}/ns1/resource_types/OS::Nova::Flavor",
                      headers=admin.headers).status_code == 204
    assert api.get(f"{NS}/ns1/resource_types", headers=admin.headers) \
        .json()["resource_type_associations"] == []


@pytest.mark.parametrize("url,body,field", [
    (NS, {"namespace": ""}, "namespace"),
    (NS, {"namespace": "x" * 81}, "namespace"),
    (NS, {"namespace": "ok", "visibility": "shared"}, "visibility"),
    (NS, {"namespace": "ok", "protected": "yes"}, "protected"),
    (NS, {"namespace": "ok", "bogus": 1}, "bogus"),
    (NS, {"namespace": "ok", "resource_type_associations": [{"prefix": "x"}]}, "name"),
    (NS, {"namespace": "ok", "objects": [{"name": "o"}, {"name": 5}]}, "objects/1/name"),
    (NS, {"namespace": "ok", "properties": {"p": {"title": "t", "type": "colour"}}},
     "properties/p/type"),
    (f"{NS}/ns1/objects", {"description": "no name"}, "name"),
    (f"{NS}/ns1/objects", {"name": "o", "required": "p"}, "required"),
    (f"{NS}/ns1/properties", {"name": "p", "type": "string"}, "title"),
    (f"{NS}/ns1/properties", {"name": "p", "title": "t", "type": "string",
                              "maxLength": -1}, "maxLength"),
    (f"{NS}/ns1/tags", {"tags": [{"nom": "a"}]}, "nom"),
    (f"{NS}/ns1/tags", {"tags": "a"}, "tags"),
    (f"{NS}/ns1/resource_types", {"name": 3}, "name"),
])
def test_bad_input_is_400_naming_the_field(api, admin, cloud, url, body, field):
    make_ns(api, admin)
    before = [count(cloud, m) for m in (MetadefNamespace, MetadefObject, MetadefTag)]
    r = api.post(url, json=body, headers=admin.headers)
    assert r.status_code == 400, r.text
    assert field in r.json()["badRequest"]["message"] if "badRequest" in r.json() \
        else field in r.text
    assert [count(cloud, m) for m in (MetadefNamespace, MetadefObject, MetadefTag)] == before


def test_namespace_create_is_all_or_nothing(api, admin, cloud):
    body = {"namespace": "whole", "objects": [{"name": "o"}, {"name": "o"}],
            "tags": [{"name": "t"}]}
    r = api.post(NS, json=body, headers=admin.headers)
    assert r.status_code == 409, r.text
    assert count(cloud, MetadefNamespace) == 0 and count(cloud, MetadefTag) == 0
    r = api.post(NS, json={"namespace": "whole", "resource_type_associations": [
        {"name": "OS::Nope"}]}, headers=admin.headers)
    assert r.status_code == 404 and count(cloud, MetadefNamespace) == 0
    make_ns(api, admin, "dup")
    assert api.post(NS, json={"namespace": "dup"}, headers=admin.headers).status_code == 409


def test_namespace_show_holds_its_contents_and_delete_cascades(api, admin, cloud):
    make_ns(api, admin, "full", objects=[{"name": "o"}], tags=[{"name": "t"}],
            properties={"p": {"title": "P", "type": "boolean"}})
    body = api.get(f"{NS}/full", headers=admin.headers).json()
    assert body["objects"][0]["name"] == "o" and body["tags"] == [{"name": "t"}]
    assert body["properties"] == {"p": {"title": "P", "type": "boolean"}}
    assert api.delete(f"{NS}/full", headers=admin.headers).status_code == 204
    assert count(cloud, MetadefObject) == 0 and count(cloud, MetadefTag) == 0


def test_protected_namespace_keeps_its_contents(api, admin):
    make_ns(api, admin, "prot", protected=True, tags=[{"name": "t"}], objects=[{"name": "o"}])
    assert api.delete(f"{NS}/prot/tags/t", headers=admin.headers).status_code == 403
    assert api.delete(f"{NS}/prot/tags", headers=admin.headers).status_code == 403
    assert api.delete(f"{NS}/prot/objects/o", headers=admin.headers).status_code == 403
    assert len(api.get(f"{NS}/prot/tags", headers=admin.headers).json()["tags"]) == 1


def test_list_paging_and_bad_query(api, admin):
    for name in ("n1", "n2", "n3"):
        make_ns(api, admin, name)
    r = api.get(f"{NS}?limit=2&sort_key=namespace&sort_dir=asc", headers=admin.headers)
    body = r.json()
    assert [n["namespace"] for n in body["namespaces"]] == ["n1", "n2"]
    assert "marker=n2" in body["next"]
    r = api.get(f"{NS}?limit=2&sort_key=namespace&sort_dir=asc&marker=n2",
                headers=admin.headers)
    assert [n["namespace"] for n in r.json()["namespaces"]] == ["n3"]
    for query, field in (("limit=-1", "limit"), ("limit=x", "limit"),
                         ("sort_key=owner", "sort_key"), ("sort_dir=up", "sort_dir"),
                         ("visibility=shared", "visibility")):
        r = api.get(f"{NS}?{query}", headers=admin.headers)
        assert r.status_code == 400 and field in r.text, query


@pytest.mark.parametrize("name,title", [
    ("namespace", "namespace"), ("namespaces", "namespaces"), ("object", "object"),
    ("objects", "objects"), ("property", "property"), ("properties", "properties"),
    ("resource_type", "resource_type_association"),
    ("resource_types", "resource_type_associations"), ("tag", "tag"), ("tags", "tags"),
])
def test_schemas(api, reader, other_member, name, title):
    for caller in (reader, other_member):
        r = api.get(f"/image/v2/schemas/metadefs/{name}", headers=caller.headers)
        assert r.status_code == 200 and r.json()["name"] == title


def test_unknown_schema_is_404(api, reader):
    assert api.get("/image/v2/schemas/metadefs/nope", headers=reader.headers).status_code == 404


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=90),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=300), children, max_size=3),
    max_leaves=8,
)
namespace_fields = st.fixed_dictionaries({"namespace": st.text(max_size=90)}, optional={
    "display_name": json_values, "description": json_values, "visibility": json_values,
    "protected": json_values, "owner": json_values, "resource_type_associations": json_values,
    "properties": json_values, "objects": json_values, "tags": json_values,
})


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=namespace_fields)
def test_random_namespace_bodies_never_500_nor_half_written(api, admin, cloud, body):
    before = count(cloud, MetadefNamespace)
    r = api.post(NS, json=body, headers=admin.headers)
    assert r.status_code in (201, 400, 404, 409), (body, r.status_code, r.text)
    after = count(cloud, MetadefNamespace)
    if r.status_code == 201:
        assert after == before + 1
        assert api.delete(f"{NS}/{r.json()['namespace']}", headers=admin.headers) \
            .status_code in (204, 403, 404)
        api.put(f"{NS}/{body['namespace']}", json={"namespace": body["namespace"]},
                headers=admin.headers)
        api.delete(f"{NS}/{body['namespace']}", headers=admin.headers)
    else:
        assert after == before
