"""Extractive question answering on AWS Lambda.

Layout: ``engine`` (QA decoding, backend-agnostic), ``backends/`` (torch, onnx), ``store`` (S3 -> /tmp),
``publish`` (CLI to put a model in S3), ``settings`` (env), ``schemas`` (API contract), ``app`` (Lambda entry).
"""
