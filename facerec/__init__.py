"""facerec: `vision/` (the face library, no HTTP in it), `service/` (what the three services are built on),
`cli/` (the `facerec` command, a client of the services) and `run.py` (what `make run` runs)."""
