"""Store construction shared by fixtures and tests."""

from scheduler.keys import Keys
from scheduler.settings import Settings
from scheduler.store import Store


def make_store(client, namespace: str = "fleet") -> Store:
    return Store(client, Keys(namespace), Settings(namespace=namespace))


def race_loads(server, manifests: list, rounds: int) -> list[BaseException]:
    """One thread per manifest, each on its own connection, loading it ``rounds`` times at once.

    Returns what the threads raised (the caller asserts it is empty), so a failure in a
    thread is reported rather than lost.
    """
    import threading

    errors: list[BaseException] = []

    def loader(spec) -> None:
        store = make_store(server.client())
        try:
            for _ in range(rounds):
                store.load(spec)
        except Exception as err:  # handed back to the test, which fails on it
            errors.append(err)

    threads = [threading.Thread(target=loader, args=(spec,)) for spec in manifests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
