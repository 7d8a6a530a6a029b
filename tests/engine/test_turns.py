"""Turns on the models (engine/turns.py), by themselves: who gets a freed turn, Stop while waiting, releases."""

from __future__ import annotations

import threading
import time

import pytest

from sd_img2img.engine.turns import TurnQueue, TurnStopped


def test_a_freed_turn_goes_to_the_ticket_that_waited_longest():
    turns = TurnQueue(capacity=1)
    grid = turns.ticket("grid")
    assert grid.wait(0)  # the line was empty
    single, other = turns.ticket("single"), turns.ticket("other")
    assert not single.wait(0.01) and not other.wait(0)
    grid.release()  # its cell ended; its next cell asks after the two clicked meanwhile
    next_cell = turns.ticket("grid")
    assert single.wait(0) and not other.wait(0) and not next_cell.wait(0)
    single.release()
    assert other.wait(0) and not next_cell.wait(0)
    other.release()
    assert next_cell.wait(0)
    next_cell.release()
    assert turns.turns_of("grid") == 2 and turns.granted == 4


def test_with_several_turns_the_session_holding_fewest_goes_first():
    """Two turns at once (Ray's two workers): a grid holding one waits behind a session holding none, even one
    that asked later."""
    turns = TurnQueue(capacity=2)
    a1, a2 = turns.ticket("a"), turns.ticket("a")
    assert a1.wait(0) and a2.wait(0)
    a3 = turns.ticket("a")
    b = turns.ticket("b")
    a1.release()
    assert b.wait(0) and not a3.wait(0)  # "a" holds one, "b" none
    a2.release()
    assert a3.wait(0)
    for t in (a3, b):
        t.release()
    assert turns.holding() == [] and turns.waiting() == []


def test_stop_while_waiting_leaves_the_line_and_a_turn_is_given_back_however_its_run_ends():
    turns = TurnQueue(capacity=1)
    stop = threading.Event()
    first = turns.ticket("first")
    assert first.wait(0)
    outcome = []

    def waiter():
        try:
            with turns.turn("second", stop.is_set):
                outcome.append("ran")
        except TurnStopped:
            outcome.append("stopped")

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.05)
    assert turns.waiting() == ["second"]
    stop.set()
    thread.join(2)
    assert outcome == ["stopped"] and turns.waiting() == []
    first.release()
    first.release()  # twice is harmless
    with pytest.raises(RuntimeError):
        with turns.turn("third"):
            raise RuntimeError("the run failed")
    assert turns.holding() == [] and turns.ticket("fourth").wait(0)  # the failed run gave its turn back
