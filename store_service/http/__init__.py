"""The store's HTTP edge: blueprints that parse a request, call the core and return JSON (or the page)."""
