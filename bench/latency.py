"""Publish-to-receive latency through one connection that subscribes to its own topic: iotnotify's
client (the library `send` and `subscribe` use) and paho-mqtt, both over wss through the local
front. One QoS 1 message at a time; the time from handing it to the client to its arrival."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

Sample = Callable[[int], list[float]]


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def iotnotify_latency(endpoint_url: str, ca_file: str, count: int, warm_up: int = 50) -> list[float]:
    from iotnotify.keys import endpoint_source
    from iotnotify.mqtt import ConnectOptions, open_session

    arrived = threading.Event()
    connection = open_session(endpoint_source(endpoint_url, 10), ConnectOptions(ca_file=ca_file),
                                 on_message=lambda _message: arrived.set())
    try:
        connection.subscribe(["bench/latency"], 1)
        return _ping(count, warm_up, arrived, lambda payload: connection.publish(
            "bench/latency", payload, 1, False, lambda _ok: None))
    finally:
        connection.disconnect()


def paho_latency(url: str, ca_file: str, count: int, warm_up: int = 50) -> list[float]:
    import paho.mqtt.client as mqtt

    arrived, subscribed = threading.Event(), threading.Event()
    parts = urlsplit(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, transport="websockets", protocol=mqtt.MQTTv311)
    client.ws_set_options(path=f"{parts.path}?{parts.query}")
    client.tls_set(ca_certs=ca_file)
    client.on_message = lambda *_: arrived.set()
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(parts.hostname, parts.port)
    client.loop_start()
    try:
        client.subscribe("bench/latency", qos=1)
        if not subscribed.wait(10):
            raise RuntimeError("paho: no SUBACK")
        return _ping(count, warm_up, arrived, lambda payload: client.publish("bench/latency", payload, qos=1))
    finally:
        client.disconnect()
        client.loop_stop()


def _ping(count: int, warm_up: int, arrived: threading.Event, publish: Callable[[bytes], object]) -> list[float]:
    samples = []
    for i in range(warm_up + count):
        arrived.clear()
        start = time.perf_counter()
        publish(b"%d" % i)
        if not arrived.wait(10):
            raise RuntimeError(f"message {i} did not arrive within 10 s")
        if i >= warm_up:
            samples.append(time.perf_counter() - start)
    return samples
