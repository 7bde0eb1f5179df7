"""When a scheduled canary's FAIL becomes a rollback: a pure decision, no I/O.

A canary runs every few minutes. Read at the gate's alpha, a version whose true accuracy sits exactly
at a floor FAILs a few percent of the runs by chance, so "roll back on any FAIL" rolls a healthy model
back most months. Instead a FAIL is *suspect* (recorded, reported, exported; nobody is paged) until
``confirmations`` consecutive finished canaries of the same version have FAILed; a canary whose
evidence FAILs even at the much stricter severe level rolls back at once (a clear regression is not
kept serving users for another schedule interval).

The caller (aire.monitor.canaries) reads the earlier canaries' verdicts from the store and hands them in,
newest first, limited to the version's current stay in production.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel

from aire.gate.policy import Verdict


class CanaryState(StrEnum):
    HEALTHY = "HEALTHY"  # this canary did not FAIL (PASS, INCONCLUSIVE or ERROR: nothing to escalate)
    SUSPECT = "SUSPECT"  # it FAILed, not yet confirmed: recorded and reported, no incident
    ROLLBACK = "ROLLBACK"  # confirmed, or severe: open an incident and roll back


class Escalation(BaseModel):
    state: CanaryState
    fails: int  # consecutive FAILs of this version, this canary included (0 when it did not FAIL)
    needed: int  # consecutive FAILs that confirm a rollback
    severe: bool = False  # this canary FAILed at the severe level

    @property
    def rolls_back(self) -> bool:
        return self.state is CanaryState.ROLLBACK

    def text(self) -> str:
        """E.g. 'FAIL 1 of 2 needed (suspect)', 'FAIL 2 of 2: confirmed', 'FAIL at the severe level: at once'."""
        if self.state is CanaryState.HEALTHY:
            return "no FAIL"
        if self.severe:
            return f"FAIL at the severe level: rolled back at once ({self.fails} of {self.needed} consecutive)"
        if self.state is CanaryState.ROLLBACK:
            return f"FAIL {self.fails} of {self.needed}: confirmed"
        return f"FAIL {self.fails} of {self.needed} needed (suspect, no rollback yet)"


def escalate(
    verdict: Verdict | str,
    severe_verdict: Verdict | str | None,
    previous: Sequence[Verdict | str | None],
    *,
    confirmations: int,
) -> Escalation:
    """This canary's escalation state.

    ``verdict``: this canary at the policy's alpha; ``severe_verdict``: the same evidence decided at the
    severe alpha (None: not computed, never severe); ``previous``: the verdicts of this version's
    earlier finished canaries, newest first (None for one whose verdict is unknown: it breaks the run
    of FAILs, as a PASS, INCONCLUSIVE or ERROR does).
    """
    if confirmations < 1:
        raise ValueError(f"confirmations must be at least 1, got {confirmations}")
    # A FAIL at the stricter level is a FAIL at the policy's level too (its intervals are wider).
    severe = severe_verdict is not None and Verdict(severe_verdict) is Verdict.FAIL
    if Verdict(verdict) is not Verdict.FAIL and not severe:
        return Escalation(state=CanaryState.HEALTHY, fails=0, needed=confirmations)
    fails = 1
    for v in previous:
        if v is None or Verdict(v) is not Verdict.FAIL:
            break
        fails += 1
    state = CanaryState.ROLLBACK if severe or fails >= confirmations else CanaryState.SUSPECT
    return Escalation(state=state, fails=fails, needed=confirmations, severe=severe)
