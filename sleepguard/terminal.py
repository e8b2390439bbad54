"""The person at the terminal of a one-shot command: its yes/no question, and what Ctrl-C does meanwhile.

The commands' side of the library: it reads stdin and writes to the terminal, and a second Ctrl-C
(or a first one whose requests in flight outlast GRACE_SECONDS) ends the process at once.
"""

import os
import signal
import sys
import threading

from .wording import NO_ANSWER, QUIT_AT_ONCE, STOPPING, confirmation_question

# After the first Ctrl-C the requests in flight get this long to finish before the command quits anyway.
GRACE_SECONDS = 5
INTERRUPTED = 130


class Terminal:
    """The question and the SIGINT handler: the first Ctrl-C sets `stopping` (nothing new starts), a second quits.

    Installed as it is made, so no Ctrl-C of the command ends in a traceback; leaving its `with` block
    means the work returned, so the grace period has nothing left to wait for.
    """

    def __init__(self, prog, ask=True):
        self.prog = prog
        self.ask = ask
        self.stopping = threading.Event()
        self.asking = False
        self.timer = None
        signal.signal(signal.SIGINT, self)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.timer is not None:
            self.timer.cancel()

    def __call__(self, signum, frame):
        if self.stopping.is_set():
            self.quit_now()
        self.stopping.set()
        if self.asking:
            raise KeyboardInterrupt  # nothing is in flight while the question waits: stop waiting for it
        self.say(STOPPING)
        self.timer = threading.Timer(GRACE_SECONDS, self.quit_now)
        self.timer.daemon = True
        self.timer.start()

    def say(self, line):
        # os.write, not print: safe in a signal handler even when it interrupted a print.
        os.write(2, f"{self.prog}: {line}\n".encode())

    def quit_now(self):
        # os._exit: no waiting for the workers, from a signal handler or the grace timer alike.
        self.say(QUIT_AT_ONCE)
        os._exit(INTERRUPTED)

    def confirm(self, plan):
        """Ask on stdin (unless told not to ask); no stdin (closed or at its end) or Ctrl-C is no."""
        if self.stopping.is_set():
            return False
        if not self.ask:
            return True
        try:
            self.asking = True  # before the question shows: a Ctrl-C from then on answers it
            sys.stdout.write(confirmation_question(plan))
            sys.stdout.flush()
            answer = sys.stdin.readline() if sys.stdin is not None else ""
        except KeyboardInterrupt:
            sys.stdout.write("\n")
            return False
        except (OSError, ValueError):
            answer = ""  # stdin closed
        finally:
            self.asking = False
        if not answer:
            sys.stdout.write("\n")
            self.say(NO_ANSWER)
        return answer.strip().lower() in ("y", "yes")
