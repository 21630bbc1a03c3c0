"""What the ``run --workers`` supervisor decides when a worker ends: restart it or not, after how
long, and what the command's exit code is. Pure functions; :mod:`.workers` does the I/O.

Theory of operation
-------------------
- **Restart.** A worker that ends while the supervisor is not stopping is restarted — unless it
  ended with a configuration or topology error (exit 2), which a restart cannot cure, or it
  failed before *any* worker ever became ready: then the service never started (a broker that
  cannot be reached is exit 3), every other worker would fail the same way, and the command
  ends with that code after stopping the others.
- **Backoff.** Restarts of a worker that keeps failing wait longer and longer: 0.5 s, 1 s,
  2 s, ... up to 30 s. A worker that ran :data:`STABLE_SECONDS` or longer before it ended
  starts the series again.
- **Failure.** A worker *failed* when it ended abnormally: any exit but 0 (a signal such as
  SIGKILL included) while the supervisor was not stopping it, a non-zero exit while it
  drained, or being killed because it did not stop within the grace time (plus
  :data:`STOP_MARGIN`); a worker the stop signal reached while it was still starting has not.
  A worker that exits 0 on its own (someone sent *it* SIGTERM) is
  restarted but has not failed.
- **Exit code.** The code of the error the supervisor gave up on, if it gave up; else 1 when
  any worker ever failed during the run (even if its restart went well: the exit code is the
  record an orchestrator or a CI job sees), else 0.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from enum import Enum

from .exits import Exit

#: Seconds of running after which a worker's ending no longer counts as a quick failure.
STABLE_SECONDS = 10.0
#: The first restart delay, and the longest.
INITIAL_DELAY, MAX_DELAY = 0.5, 30.0
#: How a worker ends when the stop signal reaches it before its handlers are installed (while
#: it still imports the service): SIGTERM's default action, or ``KeyboardInterrupt`` (exit 130)
#: for a Ctrl-C that reached its process group. Nothing was in flight: a clean stop.
STOPPED_WHILE_STARTING = frozenset({-int(signal.SIGTERM), 130})
#: Seconds a draining worker gets beyond the grace time (closing its channels and
#: connections) before the supervisor kills it.
STOP_MARGIN = 5.0


class Action(Enum):
    """What the supervisor does about a worker that ended."""

    #: Start it again (after :func:`restart_delay`).
    RESTART = "restart"
    #: Leave it ended: the supervisor is stopping.
    NONE = "none"
    #: Stop every worker and end the command with :attr:`Decision.code`.
    GIVE_UP = "give up"


@dataclass(frozen=True, slots=True)
class Ending:
    """How one worker process ended.

    :param returncode: its exit status; negative: the signal that ended it (as ``asyncio``
        and ``subprocess`` report it).
    :param stopping: the supervisor had asked every worker to stop.
    :param killed: the supervisor killed it, as it did not stop in time.
    :param started: some worker (this one or another) had become ready before.
    """

    returncode: int
    stopping: bool = False
    killed: bool = False
    started: bool = True


@dataclass(frozen=True, slots=True)
class Decision:
    """The supervisor's answer to an :class:`Ending`."""

    action: Action
    #: It counts as a failed worker (exit code 1 at the end).
    failed: bool
    #: With :attr:`Action.GIVE_UP`: the command's exit code.
    code: Exit | None = None


def decide(ending: Ending) -> Decision:
    """Restart, leave, or give up on a worker that ended (see the theory of operation)."""
    code = ending.returncode
    if ending.stopping:
        clean = code == 0 or code in STOPPED_WHILE_STARTING
        return Decision(Action.NONE, failed=ending.killed or not clean)
    if code == Exit.USAGE:
        return Decision(Action.GIVE_UP, failed=True, code=Exit.USAGE)
    if code != 0 and not ending.started:
        reason = Exit.UNREACHABLE if code == Exit.UNREACHABLE else Exit.REMOTE_FAILED
        return Decision(Action.GIVE_UP, failed=True, code=reason)
    return Decision(Action.RESTART, failed=code != 0)


def next_streak(streak: int, failed: bool, ran_for: float) -> int:
    """Consecutive quick failures of one worker, after an ending.

    :param streak: the count before this ending.
    :param failed: this ending was a failure (:attr:`Decision.failed`).
    :param ran_for: seconds the worker ran before it ended.
    """
    if not failed:
        return 0
    if ran_for >= STABLE_SECONDS:
        return 1
    return streak + 1


def restart_delay(streak: int) -> float:
    """Seconds to wait before restarting a worker with ``streak`` consecutive quick failures."""
    return min(MAX_DELAY, INITIAL_DELAY * 2.0 ** max(0, streak - 1))


def exit_code(failed: bool, gave_up: Exit | None) -> Exit:
    """The command's exit code at the end of a supervised run."""
    if gave_up is not None:
        return gave_up
    return Exit.REMOTE_FAILED if failed else Exit.OK


def stop_deadline(grace: float) -> float:
    """Seconds from the stop signal until a worker still running is killed."""
    return grace + STOP_MARGIN


def describe(returncode: int) -> str:
    """How a process ended, in words: ``exited with 1``, ``killed by SIGKILL``."""
    if returncode >= 0:
        return f"exited with {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"killed by {name}"
