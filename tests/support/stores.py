"""Store construction shared by fixtures and tests."""

from scheduler.keys import Keys
from scheduler.settings import Settings
from scheduler.store import Store


def make_store(client, namespace: str = "fleet") -> Store:
    return Store(client, Keys(namespace), Settings(namespace=namespace))


def lua_heap_bytes(client) -> int:
    """The size of a real Redis's Lua heap, garbage included (the field's name since Redis 7)."""
    memory = client.info("memory")
    return int(memory.get("used_memory_vm_eval", memory.get("used_memory_lua", 0)))


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


def metrics_file_and_stream(store, name: str, attempt: int = 1) -> tuple[list[str], list[str]]:
    """A job attempt's metrics lines as the job wrote them, and as they reached Redis."""
    import os

    from scheduler.store.claims import Claims
    from scheduler.store.streams import text_entries

    job_id = store.jobs.resolve(name)
    record = Claims(store.redis, store.keys).attempts(job_id)[attempt - 1]
    with open(os.path.join(record["output_dir"], "metrics.jsonl")) as fh:
        written = fh.read().splitlines()
    entries = (text_entries(store.redis.get(store.keys.metrics_text(job_id, attempt)))  # frozen once it ended
               + store.redis.xrange(store.keys.metrics(job_id, attempt)))
    return written, [line for line in (fields[b"line"].decode() for _, fields in entries) if line]
