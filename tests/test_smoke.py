from stroute.server import ServerDriver
from stroute.client import ClientDriver


def test_new_user_lands_on_the_only_ready_pod(config, store):
    server = ServerDriver("lobby", 0, config, store=store)
    server.set_load_state(5)
    server.publish()
    with ClientDriver(config, store=store) as client:
        placement = client.place("u1", "lobby")
    assert (placement.pod, placement.source) == (0, "new")
    assert store.get("default", "u1", "lobby").pod == 0
