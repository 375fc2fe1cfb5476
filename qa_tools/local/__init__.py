"""Run the function on your machine without Docker, as the container image runs it on Lambda.

``python -m qa_tools.local invoke EVENT...`` answers events (files such as events/rest-predict.json, or inline
JSON); ``serve`` offers the base image emulator's invoke URL and ``serve --api`` the REST API's routes, on
127.0.0.1. In every mode the function runs in a sandbox (``sandbox``): the real runtime interface client
(awslambdaric) in its own process against our Runtime API (``runtime_api``), with the memory, timeout and
environment template.yaml and the Dockerfile give it (``config``). ``gateway`` holds the HTTP front doors.
"""
