"""paho-mqtt over wss: publish MESSAGE (or each stdin line with -l) to TOPIC at QoS, then disconnect.

usage: python paho_send.py URL CA_FILE TOPIC QOS (MESSAGE | -l) [CLIENT_ID]

paho numbers its messages 1 to 65535 and refuses a publish whose number is still in use
(ERR_QUEUE_SIZE), so at most 50,000 messages wait for their acknowledgement at a time.
"""

import sys
from collections import deque
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

WINDOW = 50_000

url, ca, topic, qos, message = sys.argv[1:6]
client_id = sys.argv[6] if len(sys.argv) > 6 else ""  # under AWS's rules, one the keys allow
parts = urlsplit(url)
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, transport="websockets",
                     protocol=mqtt.MQTTv311)
client.ws_set_options(path=f"{parts.path}?{parts.query}")
client.tls_set(ca_certs=ca)
client.max_inflight_messages_set(100)
client.max_queued_messages_set(0)
client.connect(parts.hostname, parts.port)
client.loop_start()
payloads = (line.rstrip(b"\n") for line in sys.stdin.buffer) if message == "-l" else [message.encode()]
waiting: deque = deque()
for payload in payloads:
    if len(waiting) >= WINDOW:
        waiting.popleft().wait_for_publish(30)
    info = client.publish(topic, payload, qos=int(qos))
    if info.rc != mqtt.MQTT_ERR_SUCCESS:
        sys.exit(f"publish failed: {mqtt.error_string(info.rc)}")
    waiting.append(info)
for info in waiting:
    info.wait_for_publish(30)
client.disconnect()
client.loop_stop()
