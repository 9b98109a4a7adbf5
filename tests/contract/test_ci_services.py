"""The engines CI runs the contract suite against are healthy only at yellow or green.

`GET _cluster/health` answers 200 whatever the status, so a health check that only asks for
it passes on a red cluster. `wait_for_status=yellow` makes the engine answer 408 until the
cluster is yellow or green
(https://docs.opensearch.org/latest/api-reference/cluster-api/cluster-health/,
https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-cluster-health),
and the check must also fail on that status (`curl -f`) and read the status it reports.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.contract.test_client_compatibility import CI_WORKFLOW, CONTRACT_JOB

ENGINES = ("opensearch", "elasticsearch")


def _services() -> dict[str, Any]:
    workflow = yaml.safe_load(CI_WORKFLOW.read_text())
    return dict(workflow["jobs"][CONTRACT_JOB]["services"])


def _health_command(options: str) -> str:
    match = re.search(r'--health-cmd "([^"]+)"', options)
    assert match, f"no --health-cmd in {options!r}"
    return match.group(1)


@pytest.mark.parametrize("engine", ENGINES)
def test_service_is_healthy_only_at_yellow_or_green(engine: str) -> None:
    # Given the engine's service container in the contract job
    command = _health_command(_services()[engine]["options"])

    # Then its health check waits for yellow, fails on an error status, and reads the status
    assert "_cluster/health?wait_for_status=yellow" in command
    assert "timeout=" in command
    assert re.search(r"curl -\w*f", command), "curl must fail on the 408 a missed wait_for_status returns"
    assert re.search(r"grep -\w*q '[^']*\(green\|yellow\)'", command)


def test_each_engine_url_points_at_its_service_port() -> None:
    workflow = yaml.safe_load(CI_WORKFLOW.read_text())
    job = workflow["jobs"][CONTRACT_JOB]
    for engine, variable in (("opensearch", "OPENSEARCH_URL"), ("elasticsearch", "ELASTICSEARCH_URL")):
        host_port = str(job["services"][engine]["ports"][0]).split(":")[0]
        assert job["env"][variable] == f"http://localhost:{host_port}"
