"""Kill a command again and again at random moments: the shared loop of the kill/resume tests.

Each round starts the command, waits a random delay drawn from ``window`` and sends
SIGKILL (no cleanup handlers run, no final write happens), then calls ``check`` so the
test can verify what the killed process left behind before the next round resumes it.
The seed is printed in every failure message so a failing sequence can be replayed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["KILL_ROUNDS", "KillLog", "kill_rounds"]

KILL_ROUNDS = 20  # the promised robustness: 20 random kill points each for bench and tune


@dataclass
class KillLog:
    """What happened in each round: the delay, whether the process was still alive, its pid."""

    seed: int
    delays: list[float] = field(default_factory=list)
    killed: list[bool] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)

    def note(self) -> str:
        rounds = zip(self.delays, self.killed, strict=True)
        points = ", ".join(f"{d:.2f}s{'' if k else ' (had ended)'}" for d, k in rounds)
        return f"(kill seed {self.seed}; kill points: {points})"


def kill_rounds(
    command: Sequence[str],
    window: tuple[float, float],
    check: Callable[[int, KillLog], None],
    *,
    rounds: int = KILL_ROUNDS,
    seed: int | None = None,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> KillLog:
    """Run ``command`` ``rounds`` times, each killed with SIGKILL after a random delay.

    A process that ends before its kill point is recorded as not killed (its run simply
    finished); the caller decides whether that is acceptable.

    Example:
        >>> log = kill_rounds(["sleep", "9"], (0.1, 0.2), lambda i, log: None, rounds=2)  # doctest: +SKIP
    """
    seed = random.randrange(1_000_000) if seed is None else seed
    rng = random.Random(seed)
    log = KillLog(seed=seed)
    for i in range(rounds):
        delay = rng.uniform(*window)
        proc = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        alive = proc.poll() is None
        if alive:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.delays.append(delay)
        log.killed.append(alive)
        log.pids.append(proc.pid)
        check(i, log)
    return log
