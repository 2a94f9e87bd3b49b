"""Counts the database work of a Cirrus process, for `bench/run --against` (bench/compare.py).

Loaded by Python at start-up (this directory is put on PYTHONPATH) when CIRRUS_BENCH_WORK_OUT
names a file: every SQL statement (SQLAlchemy's engine event), those inside a write transaction, and
every write transaction
(SQLite's process write lock, which every writer takes: its hold time too) are counted, and
the counts written to that file twice a second (the process ends with os._exit, so nothing
runs at exit). Counts, unlike seconds, do not change with the load of a shared machine: two
versions that issue the same statements and transactions per server do the same work.
"""

import os

if os.environ.get("CIRRUS_BENCH_WORK_OUT"):
    import json
    import threading
    import time

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    _counts = {"statements": 0, "write_statements": 0, "writes": 0, "write_seconds": 0.0}
    _writing = threading.local()

    def _statement(*_args, **_kwargs):
        _counts["statements"] += 1
        if getattr(_writing, "on", False):
            _counts["write_statements"] += 1

    event.listen(Engine, "before_cursor_execute", _statement)

    class _CountedLock:
        def __init__(self):
            self._lock = threading.Lock()
            self._since = 0.0

        def __enter__(self):
            self._lock.acquire()
            _writing.on = True
            self._since = time.perf_counter()
            _counts["writes"] += 1
            return self

        def __exit__(self, *_exc):
            _counts["write_seconds"] += time.perf_counter() - self._since
            _writing.on = False
            self._lock.release()

    import cirrus.db.engine as _engine

    _init = _engine.Database.__init__

    def _counting_init(self, *args, **kwargs):
        _init(self, *args, **kwargs)
        if self.is_sqlite:
            self._write_lock = _CountedLock()

    _engine.Database.__init__ = _counting_init

    def _dump():
        path = os.environ["CIRRUS_BENCH_WORK_OUT"]
        while True:
            time.sleep(0.5)
            with open(path + ".tmp", "w") as out:
                json.dump(_counts, out)
            os.replace(path + ".tmp", path)

    threading.Thread(target=_dump, name="bench-workcount", daemon=True).start()
