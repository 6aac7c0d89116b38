"""A `carla` client for the worker processes of a test run: the fakes of tests/fake_carla.py, from a JSON plan.

Put this folder (and ``tests/``) on PYTHONPATH and name the plan in $SIMREAL_FAKE_CARLA:
``{"state": "<folder>", "servers": {"host:port": [config, config, ...]}}``. The first time a process talks to a
server it becomes that server's next incarnation (counted in files under "state", across processes) and gets the
n-th config (FakeServerConfig keywords; the last one once the list runs out; null: nothing answers). So a fresh
process meets a restarted server, as a restarted collection worker would.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path

from fake_carla import FakeCarla, FakeServer, FakeServerConfig

_DOWN = object()


def _next_incarnation(state: Path, server: str) -> int:
    with open(state / server.replace(":", "_"), "a+") as counter:
        fcntl.flock(counter, fcntl.LOCK_EX)
        counter.seek(0)
        seen = len(counter.read())
        counter.write("x")
    return seen


class _PlannedServers(dict):
    def __init__(self, plan: dict) -> None:
        super().__init__()
        self._state = Path(plan["state"])
        self._plan = plan["servers"]

    def get(self, key: tuple[str, int], default: object = None) -> FakeServer | None:
        if key not in self:
            name = f"{key[0]}:{key[1]}"
            configs = self._plan.get(name)
            if configs is None:
                return None
            config = configs[min(_next_incarnation(self._state, name), len(configs) - 1)]
            self[key] = _DOWN if config is None else FakeServer(FakeServerConfig(**config), *key)
        server = dict.get(self, key)
        return None if server is _DOWN else server


_fake = FakeCarla()
_fake.module.Client.registry = _PlannedServers(json.loads(Path(os.environ["SIMREAL_FAKE_CARLA"]).read_text()))
sys.modules[__name__] = _fake.module
