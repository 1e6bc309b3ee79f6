import pytest

from .harness import SimProcess

REDIRECT = "http://127.0.0.1:9999/v1/oauth/callback"


@pytest.fixture(scope="session")
def sim_process():
    sim = SimProcess().start()
    yield sim
    rc = sim.stop()
    assert rc == 0, f"simulator exited with {rc}; log: {sim.log_path}"


@pytest.fixture
def sim(sim_process):
    sim_process.reset()
    sim_process.control("DELETE", "/calls", expect=200)
    sim_process.register_client([REDIRECT])
    return sim_process
