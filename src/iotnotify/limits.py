"""AWS IoT Core's message broker limits, as the client obeys them and the local stack enforces them.

Source: AWS General Reference, "AWS IoT Core endpoints and quotas", message broker and protocol
limits and quotas (https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits);
the publish rate and throughput are the figures aws-c-mqtt (awscrt's MQTT client, AWS's own SDK
code) throttles to when its AWS IoT Core flow control is on (AWS_IOT_CORE_PUBLISH_PER_SECOND_LIMIT,
AWS_IOT_CORE_THROUGHPUT_LIMIT in include/aws/mqtt/private/v5/mqtt5_utils.h).

The rate holds both ways: "AWS IoT limits each client connection to a maximum number of inbound and
outbound publish requests per second. Publish requests exceeding that limit will be discarded."
(the quotas table, "Publish requests per second per connection", as the developer guide's
limits-iot.md had it; CloudWatch counts the outbound ones in PublishOut.Throttle), whereas
"Data exceeding the maximum throughput will be delayed in processing" ("Throughput per second per
connection"): local/gateway.py discards messages to a client over the rate and delays the rest.
"""

from __future__ import annotations

MAX_TOPIC_BYTES = 256  # a topic or filter, UTF-8 bytes
MAX_SLASHES = 7  # forward slashes in a topic or filter
MAX_PAYLOAD_BYTES = 128 * 1024  # one message's payload
MAX_FILTERS_PER_SUBSCRIBE = 8  # filters in one SUBSCRIBE packet
MAX_SUBSCRIPTIONS = 50  # subscriptions per connection
MAX_CLIENT_ID_BYTES = 128
PUBLISH_RATE = 100  # inbound publish requests per second per connection (not adjustable)
OUTBOUND_RATE = 100  # outbound publish requests per second per connection: messages to a client (the excess is discarded)
THROUGHPUT = 512 * 1024  # bytes per second per connection, inbound and outbound
MAX_IN_FLIGHT = 100  # unacknowledged QoS 1 messages per client
KEEP_ALIVE_MIN, KEEP_ALIVE_MAX = 30, 1200  # seconds
MAX_USER_PROPERTIES_BYTES = 8 * 1024  # MQTT 5 user properties of one packet, keys and values
MAX_MESSAGE_EXPIRY = 7 * 24 * 3600  # s, MQTT 5 Message Expiry Interval
CONNECT_INTERVAL = 1.0  # s between CONNECTs with one client id ("Connect requests per second per client ID": 1, not adjustable)
MAX_CONNECTION_DURATION = 24 * 3600.0  # s a WebSocket connection lasts ("WebSocket connections are limited to 24 hours")
MAX_SESSION_EXPIRY = 3600  # s an account keeps a persistent session by default ("Persistent session expiry period": 1 hour, up to 7 days on request)
REPLAY_RATE = 10  # stored messages a resumed session is sent a second ("at a maximum rate of 10 messages per second")


def keep_alive(requested: int) -> int:
    """The keep-alive AWS IoT Core uses for a client that asks for `requested` seconds: 0 or more
    than 1,200 gets the default of 1,200, less than 30 gets 30 (the quotas page, "Keep-alive period")."""
    if requested == 0 or requested > KEEP_ALIVE_MAX:
        return KEEP_ALIVE_MAX
    return max(requested, KEEP_ALIVE_MIN)
