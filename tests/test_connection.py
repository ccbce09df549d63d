"""The connection asks for keys at each (re)connection: stale keys are fetched again, fresh ones reused."""

import datetime as dt
import threading
import time

from conftest import broker_behind_front, tutorial_keys, wait_for

from iotnotify.connection import ConnectOptions, open_connection
from iotnotify.keys import endpoint_source


def test_reconnection_fetches_keys_again_once_they_are_stale(fake_endpoint, tmp_path):
    with broker_behind_front(tmp_path) as (broker, wss_port, ca_file):
        soon = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
        fake_endpoint.answer(body=tutorial_keys(port=wss_port, expiration=soon))  # fresh for ~6 s
        source = endpoint_source(fake_endpoint.url, 5)
        received = threading.Event()
        quick = ConnectOptions(ca_file=ca_file, min_reconnect_delay=0.2, max_reconnect_delay=1)
        connection = open_connection(source, quick, lambda m: received.set())
        try:
            assert source.fetches == 1  # the keys fetched to connect were fresh: reused for signing
            time.sleep(max(0.0, (source.get().expiration - dt.datetime.now(dt.timezone.utc)).total_seconds() - 1.5))
            broker.stop()  # the connection drops; the client reconnects on its own...
            broker.start()
            wait_for(lambda: source.fetches >= 2, 30, "keys fetched again for the reconnection")
            connection.subscribe(["t"], 1)  # ...and works again with the new keys
            connection.publish("t", b"after", 1, False, lambda ok: None)
            assert received.wait(10)
        finally:
            connection.disconnect()
