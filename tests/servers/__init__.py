"""Session fixtures for the real servers of the destination types (one module per kind of
server, listed in `pytest_plugins` in tests/conftest.py). Each binds to 127.0.0.1 on a
free port, starts once per session and is stopped by its fixture."""
