"""The OpenAPI descriptions: in step with the routes, and kept by the live services (schemathesis)."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks

from detect_service import create_app as create_detect_app
from facerec.service.auth import HEADER, is_open
from facerec.service.openapi import load_spec
from store_service import create_app as create_store_app
from stream_service import create_app as create_stream_app
from tests.support.services import REPO, Service, running

SPECS = {name: REPO / f"{name}_service" / "openapi.yaml" for name in ("detect", "store", "stream")}

# Every check of the answers, but not the two that judge which inputs are accepted:
# `positive_data_acceptance` wants a 2xx for any valid request, but a random face ID is rightly a 404;
# `negative_data_rejection` wants a 4xx for any invalid one, but the store is lenient where it does no
# harm (a box's "12" is read as 12, extra keys are ignored).
CHECKS = [
    checks.not_a_server_error,  # no 5xx at all: the store is up throughout, so not even /detect's 503
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    store = create_store_app({"TESTING": True, "DATA_DIR": str(tmp_path_factory.mktemp("data"))})
    stream = create_stream_app({"TESTING": True})
    yield {"detect": create_detect_app({"TESTING": True}), "store": store, "stream": stream}
    store.extensions["face_store"].close()
    stream.extensions["streams"].close()


def routes(app):
    """(path in OpenAPI's spelling, method) of every route the app answers."""
    return {
        (rule.rule.replace("<", "{").replace(">", "}"), method.lower())
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def operations(spec):
    return {(path, method) for path, item in spec["paths"].items() for method in item if method != "parameters"}


@pytest.mark.parametrize("name", ["detect", "store", "stream"])
def test_spec_describes_exactly_the_routes(apps, name):
    app = apps[name]
    spec = app.test_client().get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert operations(spec) == routes(app)


@pytest.mark.parametrize("name", ["detect", "store", "stream"])
def test_every_error_is_documented_with_the_error_schema(apps, name):
    spec = apps[name].test_client().get("/openapi.json").json
    responses = spec["components"]["responses"]
    for path, method in operations(spec):
        for status, response in spec["paths"][path][method]["responses"].items():
            if "$ref" in response:
                response = responses[response["$ref"].rsplit("/", 1)[1]]
            if status == "414":  # gunicorn's own answer, before the app: the one HTML error
                assert list(response["content"]) == ["text/html"], (path, method)
            elif int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, status)


@pytest.mark.parametrize("name", ["detect", "store", "stream"])
def test_401_is_documented_wherever_a_key_is_required(apps, name):
    spec = apps[name].test_client().get("/openapi.json").json
    scheme = spec["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", HEADER)
    for path, method in operations(spec):
        operation = spec["paths"][path][method]
        is_open_in_spec = operation.get("security") == []
        assert is_open_in_spec == is_open(path), (path, method)
        assert ("401" in operation["responses"]) != is_open_in_spec, (path, method)


@schemathesis.serializer("application/sdp")
def sdp_text(ctx, value):
    """A WHEP offer (the stream service) is SDP, plain text: the generated string as it is."""
    return value.encode() if isinstance(value, str) else str(value).encode()


def live_schema(service):
    """The spec as the running service serves it, aimed at that service's port."""
    schema = schemathesis.openapi.from_url(service.url + "/openapi.json")
    schema.config.update(base_url=service.url)
    return schema


@pytest.fixture(scope="module")
def live_schemas(services, tmp_path_factory):
    """The store and detect services, and a stream service beside them (its processes start only with a
    stream, and no generated source opens: a few examples only, each a reader process started in vain)."""
    store, detect = services
    env = dict(detect.env, FACEREC_DATA_DIR=str(tmp_path_factory.mktemp("stream")), FACEREC_STREAM_WORKERS="1")
    stream = Service("stream", env)
    with running(stream):
        yield {"store": live_schema(store), "detect": live_schema(detect), "stream": live_schema(stream)}


def live_cases(service):
    """(service, path, method, mode) for every operation in the repo's spec (read here, at collection
    time, for the test IDs): valid requests for each, invalid ones for those with a body or a query to
    get wrong (any string is a valid face ID, and a route without inputs has no invalid request)."""
    spec = load_spec(SPECS[service])
    cases = []
    for path, method in sorted(operations(spec)):
        operation = spec["paths"][path][method]
        cases.append((service, path, method, GenerationMode.POSITIVE))
        if "requestBody" in operation or operation.get("parameters"):
            cases.append((service, path, method, GenerationMode.NEGATIVE))
    return cases


# Examples per operation and generation mode: about 10 s in all. /detect's are fewer: random bytes are
# refused before dlib, but schemathesis also sends small valid images, and each goes through dlib.
EXAMPLES = {"store": 50, "detect": 15, "stream": 10}


@pytest.mark.parametrize(
    "service, path, method, mode", live_cases("store") + live_cases("detect") + live_cases("stream"), ids=str
)
def test_live_service_keeps_its_contract(live_schemas, service, path, method, mode):
    """schemathesis's generated requests against the running service: no 5xx, and every answer's status,
    content type, headers and body are as the spec says."""
    operation = live_schemas[service][path][method]

    # derandomize: the same cases every run, so a failure here is a bug to fix, never a flake.
    @settings(
        max_examples=EXAMPLES[service],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case):
        case.call_and_validate(checks=CHECKS, timeout=60)

    check()
