"""Turns on the models: every run (a single run, and each run of a series: a grid cell, a loop, a compare column, a
batch image, a side of a comparison) takes its own turn, so one visitor's grid never holds the others for longer
than one run.

gradio's queue alone would give a grid's event the model for all of its cells. Here the page's events all start
(up to the page's limit) and each run waits for a turn: ``capacity`` runs hold one at a time (the backend's: 1 in
one process, the workers' runs at once on Ray). A freed turn goes to the session that holds the fewest turns now,
and among those to the ticket that has waited longest. A series asks for its next run's turn only once its previous
run has ended, so a single run clicked meanwhile goes first, in click order, and sessions that each have several
runs waiting take turns round-robin.

A ticket that is stopped while it waits (Stop, a closed tab) leaves the line; a turn is given back when its run
ends, however it ends (finished, stopped, failed). Nothing here knows about models or pages.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

POLL_SECONDS = 0.1  # how often a waiting ticket looks at its stop flag


class TurnStopped(Exception):
    """The ticket was stopped before its turn came."""


@dataclass
class Ticket:
    """One run's place in the line (``turns.ticket``), then its turn."""

    session: str | None
    number: int  # the order it asked in
    queue: TurnQueue = field(repr=False)
    granted: bool = False
    done: bool = False

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (None: until it comes) for the turn; True once it is this ticket's."""
        return self.queue._wait(self, timeout)

    def release(self) -> None:
        """Give the turn back (or leave the line, when it never came); safe to call more than once."""
        self.queue._release(self)


class TurnQueue:
    """The line of runs waiting for ``capacity`` turns (thread-safe).

    Args:
        capacity: runs that hold a turn at once.
    """

    def __init__(self, capacity: int = 1):
        self.capacity = max(1, int(capacity))
        self._cond = threading.Condition()
        self._numbers = itertools.count()
        self._waiting: list[Ticket] = []
        self._holding: list[Ticket] = []
        self.granted = 0  # turns given so far, to any session
        self._granted_to: dict[str | None, int] = {}

    def ticket(self, session: str | None) -> Ticket:
        """A place at the end of the line for one run of ``session``."""
        with self._cond:
            ticket = Ticket(session, next(self._numbers), self)
            self._waiting.append(ticket)
            self._grant()
            return ticket

    @contextmanager
    def turn(self, session: str | None, should_stop: Callable[[], bool] | None = None) -> Iterator[Ticket]:
        """Hold a turn for the ``with`` block: wait for it (``TurnStopped`` when ``should_stop`` turns True first),
        give it back at the block's end however it ends."""
        ticket = self.ticket(session)
        try:
            while not ticket.wait(POLL_SECONDS):
                if should_stop is not None and should_stop():
                    raise TurnStopped()
            yield ticket
        finally:
            ticket.release()

    def _grant(self) -> None:
        """Hand free turns out: to the session holding the fewest, then the longest-waiting ticket (lock held)."""
        while self._waiting and len(self._holding) < self.capacity:
            holding = {}
            for t in self._holding:
                holding[t.session] = holding.get(t.session, 0) + 1
            ticket = min(self._waiting, key=lambda t: (holding.get(t.session, 0), t.number))
            self._waiting.remove(ticket)
            ticket.granted = True
            self._holding.append(ticket)
            self.granted += 1
            self._granted_to[ticket.session] = self._granted_to.get(ticket.session, 0) + 1
            self._cond.notify_all()

    def _wait(self, ticket: Ticket, timeout: float | None) -> bool:
        with self._cond:
            end = None if timeout is None else time.monotonic() + timeout
            while not ticket.granted and not ticket.done:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(left)
            return ticket.granted and not ticket.done

    def _release(self, ticket: Ticket) -> None:
        with self._cond:
            if ticket.done:
                return
            ticket.done = True
            if ticket in self._waiting:
                self._waiting.remove(ticket)
            if ticket in self._holding:
                self._holding.remove(ticket)
            self._grant()
            self._cond.notify_all()

    # -- what the wait line reads ------------------------------------------------------------------------------

    def turns_of(self, session: str | None) -> int:
        """Turns given to ``session`` so far (a series counts the others' turns that went in between by this)."""
        with self._cond:
            return self._granted_to.get(session, 0)

    def forget(self, session: str | None) -> None:
        """Drop ``session``'s count (it has left)."""
        with self._cond:
            if not any(t.session == session for t in self._waiting + self._holding):
                self._granted_to.pop(session, None)

    def holding(self) -> list[str | None]:
        """The sessions holding a turn now (one entry per turn)."""
        with self._cond:
            return [t.session for t in self._holding]

    def waiting(self) -> list[str | None]:
        """The sessions with a ticket waiting, in the order their turns will come (as things stand)."""
        with self._cond:
            return [t.session for t in sorted(self._waiting, key=lambda t: t.number)]
