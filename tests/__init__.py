"""The test suite. Its tools are in tests/support/; its fixtures in conftest.py."""
