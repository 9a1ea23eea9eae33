"""What every service is built on: one config, one error shape, API keys, CORS, the OpenAPI description, the
OpenBLAS kernels, the one store client, the one clock and `make_app()`."""
