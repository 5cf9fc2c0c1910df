"""Fixtures shared by unit and integration tests: a throwaway PostgreSQL cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pgcluster import PgCluster, pg_bin_dir


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL cluster for the session (Debian's postgresql package)."""
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        pytest.fail("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
                    "run `make setup`")
    cluster = PgCluster(bin_dir)
    cluster.start()
    yield cluster
    cluster.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`stress` tests (slow, full size) run only when asked for: `-m stress` (make stress)."""
    if "stress" in (config.option.markexpr or ""):
        return
    skipped = [item for item in items if item.get_closest_marker("stress")]
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = [item for item in items if not item.get_closest_marker("stress")]
