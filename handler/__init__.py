"""Extractive question answering on AWS Lambda.

Init: ``settings`` (env) -> ``store`` (S3 -> /tmp, verified) -> ``engine`` (``tokenization``, ``backends/``,
``decoding``), glued by ``loader``. Each invocation: ``app`` -> ``events`` (shape) -> ``api`` (HTTP)
or ``direct`` -> ``schemas`` (contract) -> ``service`` (limits, inference). ``publish`` puts a model in S3.
"""
