"""Wake-ups inside one process (vtguardian/wake.py): a notify from any thread ends a
wait at once, is not lost when nobody waits yet, and reaches every listener; and the
lookup worker, idle on an hour-long timer, answers an IoC a follower just stored.

No timing is asserted: every wait here is far longer (an hour) than a test may take,
so a wake-up that did not happen fails the test by its timeout instead.
"""

from __future__ import annotations

import asyncio
import threading

from helpers import settings_for
from sources_helpers import ingest
from vtguardian import wake
from vtguardian.intel.lookup import LookupService
from vtguardian.store.schema import verdicts

HOUR = 3600.0


def test_a_notify_from_a_thread_ends_an_async_wait():
    signal = wake.Signal("test")

    async def main() -> bool:
        listener = signal.listen()
        threading.Timer(0.1, signal.notify).start()
        return await asyncio.wait_for(listener.wait(HOUR), 60)

    assert asyncio.run(main()) is True


def test_a_notify_before_the_wait_is_not_lost_and_is_seen_once():
    signal = wake.Signal("test")

    async def main() -> tuple[bool, bool]:
        listener = signal.listen()
        signal.notify()
        signal.notify()
        first = await listener.wait(HOUR)
        second = await listener.wait(0.01)  # both notifies were before the first wait
        return first, second

    assert asyncio.run(main()) == (True, False)


def test_every_listener_sees_a_notify_and_stop_ends_a_wait_without_one():
    signal = wake.Signal("test")

    async def main() -> list[bool]:
        one, two = signal.listen(), signal.listen()
        threading.Timer(0.1, signal.notify).start()
        seen = await asyncio.gather(one.wait(HOUR), two.wait(HOUR))
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.1, stop.set)
        stopped = await asyncio.wait_for(one.wait(HOUR, stop), 60)
        return [*seen, stopped]

    assert asyncio.run(main()) == [True, True, False]


def test_a_listener_made_before_a_notify_only_sees_later_ones():
    signal = wake.Signal("test")
    signal.notify()
    listener = signal.listen()
    assert listener.pending() is False
    signal.notify()
    assert listener.pending() is True


def test_the_idle_worker_answers_an_ioc_a_follower_just_stored(
    engine, db_url, vt_emulator, tmp_path
):
    """The worker waits an hour between looks at an empty queue; the follower's commit
    wakes it, so the IoC is looked up while the test still runs."""
    log = tmp_path / "pihole.log"
    log.write_text("")
    settings = settings_for(db_url, vt_emulator.url)
    service = LookupService(settings, engine)  # the real clock: its waits can be woken

    async def main() -> int:
        stop = asyncio.Event()
        worker = asyncio.create_task(service.run_worker(idle_seconds=HOUR, stop=stop))
        await asyncio.sleep(0.5)  # the queue is empty: the worker is waiting now
        log.write_text(
            "Dec  5 06:00:01 dnsmasq[612]: query[A] malware-c2.example.net from 192.168.1.23\n"
        )
        await asyncio.to_thread(ingest, engine, "pihole-log", log)
        for _ in range(600):
            with engine.connect() as connection:
                if connection.execute(verdicts.select()).first() is not None:
                    break
            await asyncio.sleep(0.1)
        stop.set()
        report = await asyncio.wait_for(worker, 60)
        return report.requests

    assert asyncio.run(main()) == 1
    assert vt_emulator.emulator.looked_up() == [("domain", "malware-c2.example.net")]
    with engine.connect() as connection:
        assert connection.execute(verdicts.select()).one().verdict == "malicious"


def test_a_verdict_that_turns_malicious_or_clears_wakes_blocking_and_a_new_alert_delivery(
    engine, db_url, vt_emulator, tmp_path
):
    name = "flip-flop.example.net"
    log = tmp_path / "pihole.log"  # a device asked for it: a malicious verdict is an alert
    log.write_text(f"Dec  5 06:00:01 dnsmasq[612]: query[A] {name} from 192.168.1.23\n")
    ingest(engine, "pihole-log", log)
    emulator = vt_emulator.emulator
    bad = {"type": "domain", "value": name, "malicious": 14, "harmless": 40, "undetected": 30}
    good = {"type": "domain", "value": name, "malicious": 0, "harmless": 70, "undetected": 18}
    service = LookupService(settings_for(db_url, vt_emulator.url), engine)
    verdict_changes, alerts = wake.VERDICTS.listen(), wake.ALERTS.listen()

    def look_up(seed: dict) -> str | None:
        emulator.configure({"seeds": [seed]})
        return asyncio.run(service.lookup_values([name], refresh=True))[0].verdict

    seen = []
    for seed in (bad, bad, good, good, bad):
        verdict = look_up(seed)
        seen.append((verdict, verdict_changes.pending(), alerts.pending()))
    assert seen == [
        ("malicious", True, True),  # a new malicious verdict: block and alert now
        ("malicious", False, False),  # confirmed: nothing to do at once
        ("harmless", True, False),  # cleared: unblock now
        ("harmless", False, False),
        ("malicious", True, True),
    ]


def test_the_worker_and_the_alert_job_delivering_at_once_post_each_alert_once(
    engine, db_url, vt_emulator, tmp_path
):
    """``run`` shares one service between the worker (which delivers when idle) and the
    alert job (woken by a new alert): two deliveries at the same moment, to a slow
    webhook, still post the alert once."""
    from aiohttp import web

    from vtguardian.testing.server import BackgroundServer

    posted: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        posted.append(await request.json())
        await asyncio.sleep(0.3)  # slow: the second delivery starts meanwhile
        return web.Response(status=204)

    def app() -> web.Application:
        application = web.Application()
        application.router.add_post("/hook", hook)
        return application

    log = tmp_path / "pihole.log"
    log.write_text(
        "Dec  5 06:00:01 dnsmasq[612]: query[A] malware-c2.example.net from 192.168.1.23\n"
    )
    ingest(engine, "pihole-log", log)
    with BackgroundServer(app) as receiver:
        settings = settings_for(
            db_url, vt_emulator.url, alerts={"webhook_url": f"{receiver.url}/hook"}
        )
        service = LookupService(settings, engine)

        async def main() -> None:
            await service.lookup_values(["malware-c2.example.net"])  # the flip: an alert
            await asyncio.gather(service.deliver_alerts(), service.deliver_alerts())

        asyncio.run(main())
    assert [(a["ioc"]["value"], a["verdict"]) for a in posted] == [
        ("malware-c2.example.net", "malicious")
    ]
