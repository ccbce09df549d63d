"""paho-mqtt over wss: publish MESSAGE (or each stdin line with -l) to TOPIC at QoS, then disconnect.

usage: python paho_send.py URL CA_FILE TOPIC QOS (MESSAGE | -l)
"""

import sys
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

url, ca, topic, qos, message = sys.argv[1:6]
parts = urlsplit(url)
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, transport="websockets", protocol=mqtt.MQTTv311)
client.ws_set_options(path=f"{parts.path}?{parts.query}")
client.tls_set(ca_certs=ca)
client.max_inflight_messages_set(100)
client.max_queued_messages_set(0)
client.connect(parts.hostname, parts.port)
client.loop_start()
payloads = (line.rstrip(b"\n") for line in sys.stdin.buffer) if message == "-l" else [message.encode()]
infos = [client.publish(topic, payload, qos=int(qos)) for payload in payloads]
for info in infos:
    info.wait_for_publish(30)
client.disconnect()
client.loop_stop()
