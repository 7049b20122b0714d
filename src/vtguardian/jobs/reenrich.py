"""Events enriched again when a pending IoC gets its verdict.

The IoCs still pending in a job's events are read back; those the job's flow can
now decide take their verdict, and every event that carried one gets its result,
malicious flag and pending count again, in one transaction. An event already
handed to its outputs with what was known when its wait ran out is handed to them
again, decided: an event never stays ``pending`` once its IoCs are decided.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection, Engine

from vtguardian.jobs.answers import JobFlow
from vtguardian.jobs.structured import PENDING, worst
from vtguardian.store import jobs as store
from vtguardian.store.engine import run_in_transaction


def reenrich(engine: Engine, job_id: str, flow: JobFlow, initial_emitted: int) -> int:
    """Decide what can be decided now; returns how many events changed."""
    with engine.connect() as connection:
        pending = store.pending_iocs(connection, job_id)
        if not pending:
            return 0
        answers = flow.resolve(connection, {(row.type, row.value): row.id for row in pending})
    decided = {
        row.id: (answer.verdict, answer.provider)
        for row in pending
        if (answer := answers.get((row.type, row.value))) is not None
    }
    if not decided:
        return 0
    answers_by_id = {
        row.id: answer
        for row in pending
        if (answer := answers.get((row.type, row.value))) is not None
    }

    def work(connection: Connection) -> int:
        seqs = store.decide_iocs(connection, job_id, decided)
        by_event: dict[int, list[str]] = defaultdict(list)
        counts: dict[str, list[int]] = {}
        for row in store.event_iocs(connection, job_id, seqs):
            by_event[row.seq].append(row.state)
            answer = answers_by_id.get(row.ioc_id)
            if answer is not None:  # decided just now: the Flows page's answers, decisions
                for name in answer.answered:
                    counts.setdefault(name, [0, 0])[0] += 1
                counts.setdefault(answer.provider, [0, 0])[1] += 1
        emitted = store.emitted_of(connection, job_id, seqs)
        results = []
        for seq, states in by_event.items():
            level = worst(states)
            still = sum(state == PENDING for state in states)
            # Already out with a pending result (its wait ran out): out again, decided.
            again = still == 0 and emitted.get(seq, initial_emitted) != initial_emitted
            results.append(
                {
                    "b_seq": seq,
                    "b_result": level,
                    "b_malicious": level == "malicious",
                    "b_pending": still,
                    "b_emitted": initial_emitted if again else emitted.get(seq, initial_emitted),
                }
            )
        store.set_results(connection, job_id, results)
        store.add_counts(connection, job_id, 0, 0, counts)
        return len(results)

    return run_in_transaction(engine, work)
