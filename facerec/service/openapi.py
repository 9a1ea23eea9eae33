"""Each service's OpenAPI description: a YAML file beside its code, served as JSON at GET /openapi.json."""

import os
from typing import Any

import yaml
from flask import Flask


def serve_openapi(app: Flask, filename: str = "openapi.yaml") -> dict[str, Any]:
    """Load the service's spec once, at start-up, and answer it at GET /openapi.json."""
    spec = load_spec(os.path.join(app.root_path, filename))

    @app.get("/openapi.json")
    def openapi():
        return spec

    return spec


def load_spec(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)
