import pytest

from trainer.simulate import simulate


@pytest.fixture(scope="session")
def sersic_shards(tmp_path_factory):
    return simulate("sersic", 64, tmp_path_factory.mktemp("data") / "sersic", seed=5, shard_size=40)


@pytest.fixture(scope="session")
def realistic_shards(tmp_path_factory):
    return simulate("realistic", 64, tmp_path_factory.mktemp("data") / "realistic", seed=6)
