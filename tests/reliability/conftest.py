import pytest

from support.procs import FleetProcs


def pytest_collection_modifyitems(items):
    for item in items:
        if "/reliability/" in str(item.fspath):
            item.add_marker(pytest.mark.reliability)


@pytest.fixture
def procs(redis_server, real_redis, tmp_path):
    fleet = FleetProcs(redis_server.url, str(tmp_path))
    yield fleet
    fleet.stop_all()
