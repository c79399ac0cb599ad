"""A small Docker Engine API client on the standard library: what distrodebug asks of the engine.

Why not the docker SDK: importing it (and requests, urllib3 beneath it) took 110-170 ms, more than
a whole ``docker run``, on every ``exec``. This client speaks the same HTTP API with http.client.
Its method names and arguments follow docker-py's low-level ``APIClient`` where the runtime's
modules used them, so the call sites read the same; its exceptions are our own.

- ``endpoint.py``: where the engine is, decided as the docker CLI decides it (pure).
- ``transport.py``: how a request gets there and back: unix socket, TCP, TLS, the kept
  connection, streamed answers, hijacked streams, the API version step-down.
- ``client.py``: ``EngineClient``, the API calls themselves.
- ``bodies.py``: the create bodies built from docker-py's keyword names (pure).
- ``wire.py``: what is encoded and decoded on the way: query strings, multiplexed frames,
  progress streams, path-stat headers (pure).
- ``errors.py``: ``NotFound``, ``APIError``, ``EngineUnreachable`` and which an answer means.

Nothing is imported here: each caller imports from the module that holds the name.
"""
