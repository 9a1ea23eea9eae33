"""The OpenAPI descriptions: in step with the routes and with the API keys."""
import pytest

from detect_service import create_app as create_detect_app
from facerec.auth import HEADER, OPEN_PATHS
from store_service import create_app as create_store_app


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    store = create_store_app({"TESTING": True, "DATA_DIR": str(tmp_path_factory.mktemp("data"))})
    yield {"detect": create_detect_app({"TESTING": True}), "store": store}
    store.extensions["face_store"].close()


def routes(app):
    """(path in OpenAPI's spelling, method) of every route the app answers."""
    return {
        (rule.rule.replace("<", "{").replace(">", "}"), method.lower())
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def operations(spec):
    return {(path, method) for path, item in spec["paths"].items() for method in item if method != "parameters"}


@pytest.mark.parametrize("name", ["detect", "store"])
def test_spec_describes_exactly_the_routes(apps, name):
    app = apps[name]
    spec = app.test_client().get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert operations(spec) == routes(app)


@pytest.mark.parametrize("name", ["detect", "store"])
def test_every_error_is_documented_with_the_error_schema(apps, name):
    spec = apps[name].test_client().get("/openapi.json").json
    responses = spec["components"]["responses"]
    for path, method in operations(spec):
        for status, response in spec["paths"][path][method]["responses"].items():
            if "$ref" in response:
                response = responses[response["$ref"].rsplit("/", 1)[1]]
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, status)


@pytest.mark.parametrize("name", ["detect", "store"])
def test_401_is_documented_wherever_a_key_is_required(apps, name):
    spec = apps[name].test_client().get("/openapi.json").json
    scheme = spec["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", HEADER)
    for path, method in operations(spec):
        operation = spec["paths"][path][method]
        is_open = operation.get("security") == []
        assert is_open == (path in OPEN_PATHS), (path, method)
        assert ("401" in operation["responses"]) != is_open, (path, method)
