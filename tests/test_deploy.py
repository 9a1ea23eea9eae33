"""What can be checked of the deployment without a Docker engine: the compose file runs what `make run`
runs, on the same ports, with settings that exist; the model files are the documented ones."""

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from facerec.run import SERVICES, command
from facerec.service.config import DEFAULTS
from facerec.vision.faces import MODEL_FILES, default_models_dir
from facerec.vision.proposals import MODEL as PROPOSAL_MODEL
from tests.support.faces import photo
from tests.support.services import REPO, Service, running

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]


@pytest.mark.parametrize("name", SERVICES)
def test_compose_runs_the_make_run_command(name):
    assert COMPOSE[name]["command"] == ["python", *command(name)[1:]]


@pytest.mark.parametrize("name", SERVICES)
def test_compose_ports_and_healthcheck_match_the_bound_port(name):
    service = COMPOSE[name]
    port = DEFAULTS[f"{name.upper()}_BIND"].rsplit(":", 1)[1]
    assert service["environment"][f"FACEREC_{name.upper()}_BIND"] == f"0.0.0.0:{port}"
    if service.get("network_mode") == "host":  # the stream service: on the host's port itself
        assert "ports" not in service
    else:
        assert any(p.endswith(f"{port}:{port}") for p in service["ports"])
    assert f"127.0.0.1:{port}/health" in " ".join(service["healthcheck"]["test"])
    assert service["restart"] == "unless-stopped"


def test_compose_settings_exist_and_point_at_each_other():
    for service in COMPOSE.values():
        for key in service["environment"]:
            assert key.startswith("FACEREC_") and key[len("FACEREC_") :] in DEFAULTS
    store_port = DEFAULTS["STORE_BIND"].rsplit(":", 1)[1]
    assert COMPOSE["detect"]["environment"]["FACEREC_STORE_URL"] == f"http://store:{store_port}"
    # Calls (WebRTC) need the stream service on the host's network, where it finds the store published
    # on the host's loopback.
    assert COMPOSE["stream"]["network_mode"] == "host"
    assert COMPOSE["stream"]["environment"]["FACEREC_STORE_URL"] == f"http://127.0.0.1:{store_port}"
    assert f"127.0.0.1:{store_port}:{store_port}" in COMPOSE["store"]["ports"]
    assert f"{COMPOSE['store']['environment']['FACEREC_DATA_DIR']}" in COMPOSE["store"]["volumes"][0]


def test_the_store_is_published_on_loopback_only():
    assert all(p.startswith("127.0.0.1:") for p in COMPOSE["store"]["ports"])


def test_model_files_match_models_readme():
    readme = (REPO / "models" / "README.md").read_text()
    documented = dict(re.findall(r"\| `(\S+\.dat)` \|.*\| `([0-9a-f]{64})` \|", readme))
    for name in MODEL_FILES.values():
        data = (Path(default_models_dir()) / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == documented[name], name


def test_the_proposal_model_matches_models_readme():
    readme = (REPO / "models" / "README.md").read_text()
    documented = re.search(rf"\| `{re.escape(PROPOSAL_MODEL.name)}` .*\| `([0-9a-f]{{64}})` \|", readme)[1]
    assert hashlib.sha256(PROPOSAL_MODEL.read_bytes()).hexdigest() == documented
    assert PROPOSAL_MODEL.parent == REPO / "models"  # loaded from the repository, never downloaded


def test_makefile_targets_the_readme_names():
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_two_instances_run_side_by_side_on_one_machine(tmp_path):
    """Two store + detect pairs for one user: each serves its own photos, and no gunicorn master takes a
    per-user control socket that the others would collide on."""
    home = tmp_path / "home"
    home.mkdir()
    pairs = []
    for n in range(2):
        env = dict(
            os.environ,
            PYTHONPATH=str(REPO),
            HOME=str(home),
            FACEREC_DETECT_WORKERS="1",
            FACEREC_DATA_DIR=str(tmp_path / f"data{n}"),
        )
        env.pop("XDG_RUNTIME_DIR", None)
        store = Service("store", env)
        env["FACEREC_STORE_URL"] = store.url
        pairs += [store, Service("detect", env)]
    with running(*pairs):
        for store, detect in zip(pairs[::2], pairs[1::2]):
            response = requests.post(
                detect.url + "/detect", data=photo("face_recognition_test_images/obama.jpg"), timeout=60
            )
            assert response.status_code == 200 and len(response.json()["faces"]) == 1
            assert requests.get(store.url + "/health", timeout=5).json()["faces"] == 1
        assert not list(home.rglob("*.ctl"))


# docker-compose.scale.yml: PostgreSQL, two replicas of each service, HAProxy in front (docs/scaling.md).
SCALE = yaml.safe_load((REPO / "docker-compose.scale.yml").read_text())["services"]
HAPROXY_CFG = REPO / "deploy" / "haproxy.cfg"


def test_scale_compose_runs_the_make_run_commands_against_postgresql():
    stores = {n: s for n, s in SCALE.items() if n.startswith("store-")}
    detects = {n: s for n, s in SCALE.items() if n.startswith("detect-")}
    assert len(stores) == len(detects) == 2
    for service in stores.values():
        assert service["command"] == ["python", *command("store")[1:]]
        assert service["environment"]["FACEREC_DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in service["environment"]["FACEREC_DATABASE_URL"]
    for service in detects.values():
        assert service["command"] == ["python", *command("detect")[1:]]
        assert service["environment"]["FACEREC_STORE_URL"] == "http://balancer:5001"
    for service in [*stores.values(), *detects.values()]:
        assert all(key.startswith("FACEREC_") and key[len("FACEREC_") :] in DEFAULTS for key in service["environment"])
        assert "/health" in " ".join(service["healthcheck"]["test"])
    assert "pg_isready" in SCALE["postgres"]["healthcheck"]["test"]
    assert all(p.startswith("127.0.0.1:") for p in SCALE["balancer"]["ports"] if p.endswith(":5001"))


def test_haproxy_balances_every_replica_with_health_checks():
    config = HAPROXY_CFG.read_text()
    assert "option httpchk GET /health" in config and re.search(r"default-server check\b", config)
    servers = re.findall(r"^\s+server (\S+) (\S+):(\d+)", config, re.M)
    assert sorted(name for name, _, _ in servers) == sorted(n for n in SCALE if n.startswith(("store-", "detect-")))
    assert all(host == name for name, host, _ in servers)


@pytest.mark.skipif(not shutil.which("haproxy"), reason="no haproxy binary to check deploy/haproxy.cfg with")
def test_haproxy_accepts_its_configuration():
    result = subprocess.run(["haproxy", "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
