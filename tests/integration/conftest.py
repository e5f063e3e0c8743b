"""Integration tests: real servers on 127.0.0.1, subprocesses (CLI, examples, benchmark smoke modes).

Every test here is marked ``integration`` (select with ``-m integration``, skip with ``-m "not integration"``)
and gets a longer per-test timeout than the unit tests. The README's test command runs both folders.
"""

from __future__ import annotations

import pytest

INTEGRATION_TIMEOUT_S = 300


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = __file__.rsplit("/", 1)[0]
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.integration)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(INTEGRATION_TIMEOUT_S))
