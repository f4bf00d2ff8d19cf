"""The event spool: events the broker has not acknowledged survive a power cut (the process
SIGKILLed, no shutdown code run) and reach a real Mosquitto from the next start; a damaged file
or a disk that cannot be written never stops the daemon."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from edge.config import MQTTConfig, parse_config
from edge.publish.mqtt import MQTTPublisher
from edge.publish.spool import STALE_LINES, EventSpool
from tests.support import MOSQUITTO, Mosquitto, Subscriber, free_port, wait_for

pytestmark = pytest.mark.mqtt

ROOT = Path(__file__).resolve().parents[2]

# A daemon's publisher with no broker to talk to: it queues three events, says so, and waits
# to be killed.
QUEUE_AND_WAIT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from edge.config import MQTTConfig
    from edge.publish.mqtt import MQTTPublisher
    config = MQTTConfig(
        host="127.0.0.1", port=int(sys.argv[1]), discovery=False, spool_file=Path(sys.argv[2])
    )
    publisher = MQTTPublisher(config, "cam")
    publisher.start()
    for sequence in range(3):
        publisher.publish_event({"emotion": "sad", "sequence": sequence})
    print("queued", flush=True)
    time.sleep(600)
    """
)


def test_events_queued_before_a_power_cut_arrive_after_the_restart(tmp_path: Path):
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is needed")
    spool = tmp_path / "state" / "pending-events.jsonl"
    broker = Mosquitto(tmp_path / "broker")  # its port is chosen now, the broker starts later
    process = subprocess.Popen(
        [sys.executable, "-c", QUEUE_AND_WAIT, str(broker.port), str(spool)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "queued"
    finally:
        process.send_signal(signal.SIGKILL)  # no close(), no atexit: as a pulled plug
        process.wait(10)
    assert [json.loads(line)["sequence"] for line in spool.read_text().splitlines()] == [0, 1, 2]

    broker.start()
    subscriber = Subscriber(broker.port, ["yuzug/cam/event"])
    config = MQTTConfig(host="127.0.0.1", port=broker.port, discovery=False, spool_file=spool)
    publisher = MQTTPublisher(config, "cam")
    assert publisher.counters["events_restored"] == 3
    publisher.start()
    try:
        wait_for(lambda: len(subscriber.json("/event")) == 3, 20, what="the restored events")
        assert [e["sequence"] for e in subscriber.json("/event")] == [0, 1, 2]
        # Acknowledged by the broker: nothing waits, so the file is gone.
        wait_for(lambda: not spool.exists(), 10, what="the spool emptied")
        publisher.publish_event({"emotion": "happy", "sequence": 3})
        wait_for(lambda: len(subscriber.json("/event")) == 4, 10, what="a live event")
        wait_for(lambda: not spool.exists(), 10, what="the live event acknowledged")
    finally:
        publisher.close()
        subscriber.close()
        broker.stop()


def test_a_clean_stop_with_the_broker_away_keeps_the_events_and_says_where(tmp_path: Path, caplog):
    spool = tmp_path / "pending-events.jsonl"
    config = MQTTConfig(host="127.0.0.1", port=free_port(), discovery=False, spool_file=spool)
    publisher = MQTTPublisher(config, "cam")
    publisher.start()
    for sequence in range(2):
        publisher.publish_event({"sequence": sequence})
    caplog.set_level(logging.INFO)
    publisher.close()
    kept = [r.getMessage() for r in caplog.records if "kept in" in r.getMessage()]
    assert kept == [f"MQTT: 2 events are kept in {spool} for the next start"]
    assert not any("not delivered" in r.getMessage() for r in caplog.records)
    assert len(spool.read_text().splitlines()) == 2


def test_a_torn_line_is_skipped_and_the_newest_events_kept(tmp_path: Path, caplog):
    path = tmp_path / "pending-events.jsonl"
    lines = [json.dumps({"sequence": i}) for i in range(5)]
    # A power cut mid-write leaves half a line; a foreign line is not an event either.
    path.write_text("\n".join(lines) + '\n{"sequence": 5, "emot\n[1, 2]\n')
    spool = EventSpool(path, limit=3)
    caplog.set_level(logging.WARNING)
    restored = spool.load(first_id=10)
    assert [(i, json.loads(e)["sequence"]) for i, e in restored] == [(10, 2), (11, 3), (12, 4)]
    assert f"spool {path}: skipped 2 damaged line(s)" in caplog.text
    for event_id, _ in restored:
        spool.settle(event_id)
    assert not path.exists() and spool.waiting == 0  # all settled: nothing left to keep


def test_an_event_written_after_a_torn_last_line_survives_the_next_restart(tmp_path: Path):
    # A power cut mid-write leaves the file's last line without its newline; an event appended
    # after it must not be glued onto that half line (it was then lost at the next start).
    path = tmp_path / "pending-events.jsonl"
    path.write_text(json.dumps({"sequence": 0}) + '\n{"sequence": 1, "emo')
    spool = EventSpool(path, limit=10)
    assert [json.loads(e)["sequence"] for _, e in spool.load()] == [0]
    spool.add(5, json.dumps({"sequence": 2}))

    after_restart = EventSpool(path, limit=10).load()
    assert [json.loads(e)["sequence"] for _, e in after_restart] == [0, 2]


def test_settled_lines_leave_the_file_in_batches(tmp_path: Path):
    path = tmp_path / "pending-events.jsonl"
    spool = EventSpool(path, limit=1000)
    for event_id in range(200):
        spool.add(event_id, json.dumps({"sequence": event_id}))
    for event_id in range(150):  # acknowledged in order, the last 50 still wait
        spool.settle(event_id)
        assert len(path.read_text().splitlines()) - spool.waiting < STALE_LINES
    kept = [json.loads(line)["sequence"] for line in path.read_text().splitlines()]
    assert kept[-50:] == list(range(150, 200)) and spool.waiting == 50
    spool.settle(999)  # an id it never had changes nothing
    assert spool.waiting == 50


def test_an_unwritable_spool_leaves_the_events_in_memory(tmp_path: Path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    config = MQTTConfig(
        host="127.0.0.1",
        port=free_port(),
        discovery=False,
        spool_file=blocker / "pending-events.jsonl",
    )
    caplog.set_level(logging.WARNING)
    publisher = MQTTPublisher(config, "cam")
    publisher.start()
    publisher.publish_event({"sequence": 0})
    publisher.publish_event({"sequence": 1})
    assert publisher.counters["events_pending"] == 2
    spool_lines = [r.getMessage() for r in caplog.records if "spool off" in r.getMessage()]
    assert len(spool_lines) == 1, spool_lines  # said once, not per event
    assert f"{config.spool_file} (Not a directory)" in spool_lines[0]
    publisher.close()
    assert "2 queued events were not delivered" in caplog.text


def test_systemd_state_directory_is_the_default_spool(tmp_path: Path):
    config = parse_config({}, environ={"STATE_DIRECTORY": f"{tmp_path}/a:{tmp_path}/b"})
    assert config.mqtt.spool_file == tmp_path / "a" / "pending-events.jsonl"
    assert config.mqtt.pause_file == tmp_path / "a" / "privacy-pause"  # the privacy switch too
    assert parse_config({}, environ={}).mqtt.spool_file is None
    assert parse_config({}, environ={}).mqtt.pause_file is None
    chosen = parse_config({"mqtt": {"spool_file": str(tmp_path / "x.jsonl")}}, environ={})
    assert chosen.mqtt.spool_file == tmp_path / "x.jsonl"


def test_a_write_that_fails_later_turns_the_spool_off_once(tmp_path: Path, caplog):
    path = tmp_path / "state" / "pending-events.jsonl"
    spool = EventSpool(path, limit=10)
    assert spool.load() == []
    spool.add(0, '{"sequence": 0}')
    path.unlink()
    (tmp_path / "state").rmdir()
    (tmp_path / "state").write_text("")  # the directory is gone, a file in its place
    caplog.set_level(logging.WARNING)
    spool.add(1, '{"sequence": 1}')
    spool.add(2, '{"sequence": 2}')
    assert not spool.enabled
    assert caplog.text.count("MQTT spool off: cannot write") == 1


def test_an_event_paho_keeps_for_the_next_connection_is_delivered_once(tmp_path: Path):
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is needed")
    broker = Mosquitto(tmp_path / "broker").start()
    subscriber = Subscriber(broker.port, ["yuzug/cam/event"])
    spool = tmp_path / "pending-events.jsonl"
    config = MQTTConfig(host="127.0.0.1", port=broker.port, discovery=False, spool_file=spool)
    publisher = MQTTPublisher(config, "cam")
    try:
        # The link is gone but on_disconnect has not run yet: paho answers NO_CONN and keeps
        # the QoS 1 message for the next connection.
        publisher.connected.set()
        publisher.publish_event({"sequence": 0})
        publisher.connected.clear()
        assert publisher.counters["events_pending"] == 0  # not queued a second time here
        publisher.start()
        wait_for(lambda: subscriber.json("/event"), 20, what="the event")
        wait_for(lambda: not spool.exists(), 10, what="the event acknowledged")
        threading.Event().wait(1.0)  # a duplicate would follow the first at once
        assert [e["sequence"] for e in subscriber.json("/event")] == [0]
    finally:
        publisher.close()
        subscriber.close()
        broker.stop()
