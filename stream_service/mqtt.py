"""Each stream's events on MQTT, for Home Assistant and the like (docs/home.md), when MQTT_URL is set.

A follower thread per stream reads its events as an SSE viewer does (Streams.next_events) and publishes
them; the manager knows nothing of MQTT. Topics, with <name> the stream's name made topic-safe:
- facerec/streams/<name>/events: every event (appeared, changed, left, state) as JSON, as in the SSE stream;
- facerec/streams/<name>/person (retained): the name of the person on screen who appeared or changed
  last, "unknown" for a face of nobody named, "none" once no face is on screen;
- homeassistant/sensor/facerec_<name>/config (retained): Home Assistant's MQTT discovery of a sensor
  whose state is that person topic; facerec/status (retained): "online", or "offline" as the will.
paho's network thread reconnects to a broker that went away (every 1 s, backing off to 30 s); meanwhile
events are dropped, a bounded few queued, and the streams play on: nothing here ever waits on the broker.
"""

import json
import logging
import re
import threading
import time
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from .manager import Manager
from .stream import Stream

log = logging.getLogger(__name__)

PREFIX = "facerec/streams"
STATUS_TOPIC = "facerec/status"
DISCOVERY = "homeassistant/sensor/facerec_{}/config"
NOBODY = "none"
UNKNOWN = "unknown"
PORTS = {"mqtt": 1883, "mqtts": 8883}
# How often the follower looks for new streams: a stream's first events wait at most this long; every
# later event goes out as it happens.
LOOK_EVERY = 0.2
# Messages paho holds while the broker is away: a few seconds of events, then new ones are dropped.
MAX_QUEUED = 100
RECONNECT_DELAYS = (1, 30)  # seconds: the first retry, and the longest wait between retries


def topic_name(name: str) -> str:
    """A stream's name as one topic level and a Home Assistant object ID: letters, digits, _ and - only
    (MQTT gives "/", "+" and "#" meanings)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name) or "_"


def client_for(url: str) -> tuple[mqtt.Client, str, int]:
    """A paho client for mqtt://[user:password@]host[:port] (mqtts:// for TLS), and where to connect."""
    parts = urlsplit(url)
    if parts.scheme not in PORTS or not parts.hostname:
        raise ValueError(f"MQTT_URL is mqtt://[user:password@]host[:port] or mqtts://..., not {url!r}")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"facerec-streams-{time.time_ns()}")
    if parts.username:
        client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
    if parts.scheme == "mqtts":
        client.tls_set()
    return client, parts.hostname, parts.port or PORTS[parts.scheme]


class Publisher:
    """Publishes the events of every stream of `streams` to the broker at `url`."""

    def __init__(self, url: str, streams: Manager) -> None:
        self.streams = streams
        self.client, host, port = client_for(url)
        self.client.max_queued_messages_set(MAX_QUEUED)
        self.client.reconnect_delay_set(*RECONNECT_DELAYS)
        self.client.will_set(STATUS_TOPIC, "offline", qos=1, retain=True)
        self.client.on_connect = self._connected
        self.followed: dict[str, str] = {}  # stream id → its name as a topic level
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.client.connect_async(host, port)
        self.client.loop_start()
        self.thread = threading.Thread(target=self._look_for_streams, name="facerec-mqtt", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.closed.set()
        self.client.publish(STATUS_TOPIC, "offline", qos=1, retain=True)
        self.client.disconnect()
        self.client.loop_stop()

    def _connected(self, client, userdata, flags, reason, properties) -> None:
        """On every (re)connection: online, and the discovery configs again (a broker without persistence
        forgets retained messages when it restarts)."""
        if reason.is_failure:
            log.warning("mqtt: the broker refused the connection: %s", reason)
            return
        self._publish(STATUS_TOPIC, "online", retain=True)
        with self.lock:
            for name in set(self.followed.values()):
                self._announce(name)

    def _look_for_streams(self) -> None:
        while not self.closed.wait(LOOK_EVERY):
            for stream in self.streams.current():
                with self.lock:
                    if stream.id in self.followed:
                        continue
                    self.followed[stream.id] = name = topic_name(stream.name or stream.id)
                    self._announce(name)
                threading.Thread(target=self._follow, args=(stream, name), daemon=True).start()

    def _follow(self, stream: Stream, name: str) -> None:
        """Publish one stream's events until it is stopped, then its person as nobody."""
        on_screen: dict[int, str] = {}  # track → name shown
        after = 0
        while not self.closed.is_set():
            events = self.streams.next_events(stream, after)
            if events is None:
                break
            for event in events:
                after = event["id"]
                self._publish(f"{PREFIX}/{name}/events", json.dumps({"stream": stream.id, **event}))
                person = self._person(on_screen, event)
                if person is not None:
                    self._publish(f"{PREFIX}/{name}/person", person, retain=True)
        self._publish(f"{PREFIX}/{name}/person", NOBODY, retain=True)
        with self.lock:
            self.followed.pop(stream.id, None)

    @staticmethod
    def _person(on_screen: dict, event: dict) -> str | None:
        """The person topic's new value after `event`, None when it does not change."""
        if event["type"] in ("appeared", "changed"):
            on_screen[event["track"]] = shown = event["name"] or UNKNOWN
            return shown
        if event["type"] == "left":
            on_screen.pop(event["track"], None)
            return next(reversed(on_screen.values()), NOBODY)
        if event["type"] == "state" and event["state"] not in ("starting", "playing"):
            on_screen.clear()
            return NOBODY
        return None

    def _announce(self, name: str) -> None:
        config = {
            "name": f"facerec {name}",
            "unique_id": f"facerec_{name}",
            "object_id": f"facerec_{name}",
            "state_topic": f"{PREFIX}/{name}/person",
            "availability_topic": STATUS_TOPIC,
            "icon": "mdi:face-recognition",
            "device": {"identifiers": ["facerec"], "name": "facerec", "model": "facerec stream service"},
        }
        self._publish(DISCOVERY.format(name), json.dumps(config), retain=True)

    def _publish(self, topic: str, payload: str, retain: bool = False) -> None:
        """QoS 1: a message the broker has not acknowledged is sent again after a reconnection."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.warning("mqtt: %s not published: %s", topic, mqtt.error_string(info.rc))
