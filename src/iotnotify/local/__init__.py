"""`iotnotify local`: Mosquitto behind a TLS WebSocket front that plays by AWS IoT Core's rules, and a
keys endpoint, on loopback. Its defaults live here, where `iotnotify local --help` reads them
without importing the stack."""

from iotnotify.topics import TUTORIAL_TOPIC

DEFAULT_WSS_PORT = 9443
DEFAULT_KEYS_PORT = 9080
DEFAULT_MQTT_PORT = 9883
DEFAULT_WS_PORT = 9081  # ws:// (no TLS) on loopback, for the browser page
DEFAULT_TOPICS = (TUTORIAL_TOPIC, "demo/*")  # the tutorial's topic, and room to try things
