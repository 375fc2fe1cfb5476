"""Shared fixtures live in tests/fixtures/; registered here as plugins.

Hypothesis: no per-example deadline and no "too slow" health check, in every test that does not say otherwise.
Both are verdicts on how fast the machine generates or runs examples, and one flaky test blocks everyone.
"""

from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.fixtures.model_dirs", "tests.fixtures.s3", "tests.fixtures.lambda_env"]

settings.register_profile("machine-independent", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("machine-independent")
