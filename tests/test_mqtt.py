"""Streams' events on MQTT (stream_service/mqtt.py): the real stream service playing the shared clip,
publishing to a real mosquitto, read back by a real paho subscriber; the broker stopped and started
again mid-stream."""

import json
import queue
import time
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
import requests

from tests.support.faces import CLIP
from tests.support.mosquitto import Broker, Unavailable
from tests.support.needed import needed
from tests.support.services import Service, running, service_env

NAME = "front door"  # → topic level front_door
EVENTS = "facerec/streams/front_door/events"
PERSON = "facerec/streams/front_door/person"
CONFIG = "homeassistant/sensor/facerec_front_door/config"


@pytest.fixture(scope="module")
def broker():
    try:
        broker = Broker()
    except Unavailable as e:
        needed(f"mosquitto is missing: {e}")
    yield broker
    broker.close()


@pytest.fixture(scope="module")
def stream_url(broker, tmp_path_factory):
    env = service_env(tmp_path_factory, STREAM_WORKERS=1, STREAM_MEDIA_DIR=CLIP.parent, MQTT_URL=broker.url)
    store, stream = Service("store", env), Service("stream", env)
    env["FACEREC_STORE_URL"] = store.url
    with running(store, stream):
        yield stream.url


class Subscriber:
    """Every message on facerec/# and homeassistant/#, as (topic, payload, retained), in a queue the test
    reads; it subscribes again on every (re)connection."""

    def __init__(self, broker):
        self.messages = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = lambda c, *_: c.subscribe([("facerec/#", 1), ("homeassistant/#", 1)])
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload.decode(), m.retain))
        self.client.connect_async("127.0.0.1", broker.port)
        self.client.loop_start()

    def wait_for(self, matches, timeout=60):
        """The first message for which matches(topic, payload) holds; the others are dropped."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                topic, payload, _ = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if matches(topic, payload):
                return topic, payload
        pytest.fail(f"no such message within {timeout} s")

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber(broker):
    subscriber = Subscriber(broker)
    yield subscriber
    subscriber.close()


def face_event(topic, payload, since=""):
    """A face's event that happened at `since` (ISO 8601 UTC) or later."""
    if topic != EVENTS:
        return False
    event = json.loads(payload)
    return event["type"] in ("appeared", "changed", "left") and event["time"] >= since


def utc_now():
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_stream_publishes_discovery_events_and_person_and_survives_the_broker_going(broker, stream_url, subscriber):
    started = requests.post(f"{stream_url}/streams", json={"source": str(CLIP), "name": NAME, "loop": True}, timeout=60)
    assert started.status_code == 201, started.text
    try:
        _, config = subscriber.wait_for(lambda t, p: t == CONFIG)
        assert json.loads(config)["state_topic"] == PERSON and json.loads(config)["unique_id"] == "facerec_front_door"
        _, payload = subscriber.wait_for(face_event)
        event = json.loads(payload)
        assert event["stream"] == started.json()["id"] and event["track"] is not None
        # Nobody in the store is named: whoever is on screen is unknown, or gone.
        _, person = subscriber.wait_for(lambda t, p: t == PERSON)
        assert person in ("unknown", "none")

        broker.stop()
        time.sleep(3)  # events happen meanwhile, with nobody to take them
        assert requests.get(f"{stream_url}/streams/{event['stream']}", timeout=30).json()["state"] == "playing"
        broker.start()
        restarted = utc_now()
        # The publisher reconnects: the discovery config again (this broker forgot it), then new events.
        subscriber.wait_for(lambda t, p: t == CONFIG)
        subscriber.wait_for(lambda t, p: face_event(t, p, since=restarted))
    finally:
        requests.delete(f"{stream_url}/streams/{started.json()['id']}", timeout=30)
    subscriber.wait_for(lambda t, p: t == PERSON and p == "none")
