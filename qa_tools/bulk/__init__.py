"""Bulk question answering: the same job on Step Functions Distributed Map (``submit``) or on this machine
(``run``), through the function's own answer path. ``python -m qa_tools.bulk --help``."""
