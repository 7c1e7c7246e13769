"""Store construction shared by fixtures and tests."""

from scheduler.keys import Keys
from scheduler.settings import Settings
from scheduler.store import Store


def make_store(client, namespace: str = "fleet") -> Store:
    return Store(client, Keys(namespace), Settings(namespace=namespace))
