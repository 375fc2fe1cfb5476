"""Shared fixtures live in tests/fixtures/; registered here as plugins."""

pytest_plugins = ["tests.fixtures.models", "tests.fixtures.s3", "tests.fixtures.lambda_env"]
