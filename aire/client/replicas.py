"""Which replica of an endpoint the next attempt goes to: the least loaded of the healthy ones.

An endpoint may list several base URLs of one version (``replicas`` in aire.yaml). Each attempt takes
the replica with the fewest attempts in flight, ties taken in turn, so N equal replicas each carry
about 1/N of the load and a slow one gets less. A replica whose attempt failed the way a sick server
fails (no connection, a timeout, a broken stream, 5xx) is left out for ``cooldown_s``; the retry of that
request goes elsewhere. When every replica is cooling down, the one that failed longest ago is tried:
a run never stops for want of a healthy replica, its requests fail as they would with one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from yarl import URL


@dataclass
class Replica:
    base_url: str
    in_flight: int = 0
    sent: int = 0  # attempts started
    failed: int = 0  # attempts that made it cool down
    down_until: float = 0.0

    def url(self, path: str) -> URL:
        return URL(self.base_url + path)


class Replicas:
    def __init__(self, base_urls: list[str], *, cooldown_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        if not base_urls:
            raise ValueError("an endpoint needs at least one base URL")
        self.replicas = [Replica(u) for u in base_urls]
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._turn = 0
        self._urls: dict[tuple[int, str], URL] = {}

    def __len__(self) -> int:
        return len(self.replicas)

    def pick(self) -> Replica:
        """The replica for the next attempt, counted in flight until :meth:`release`."""
        if len(self.replicas) == 1:
            chosen = self.replicas[0]
        else:
            now = self._clock()
            up = [r for r in self.replicas if r.down_until <= now]
            if up:
                # Rotate the start so that equal loads alternate instead of piling on the first.
                self._turn = (self._turn + 1) % len(self.replicas)
                order = self.replicas[self._turn :] + self.replicas[: self._turn]
                chosen = min((r for r in order if r in up), key=lambda r: r.in_flight)
            else:
                chosen = min(self.replicas, key=lambda r: r.down_until)
        chosen.in_flight += 1
        chosen.sent += 1
        return chosen

    def url(self, replica: Replica, path: str) -> URL:
        key = (id(replica), path)
        if key not in self._urls:
            self._urls[key] = replica.url(path)
        return self._urls[key]

    def release(self, replica: Replica, *, healthy: bool) -> None:
        replica.in_flight -= 1
        if not healthy:
            replica.failed += 1
            replica.down_until = self._clock() + self.cooldown_s
