"""paho-mqtt over wss: subscribe to TOPIC (at QoS 1, in on_connect, as paho's examples do), print
the first message's payload, exit.

usage: python paho_sub.py URL CA_FILE CLIENT_ID TOPIC
"""

import os
import sys
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

url, ca, client_id, topic = sys.argv[1:5]
parts = urlsplit(url)
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, transport="websockets",
                     protocol=mqtt.MQTTv311)
client.ws_set_options(path=f"{parts.path}?{parts.query}")
client.tls_set(ca_certs=ca)
client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)


def received(_client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
    sys.stdout.buffer.write(message.payload + b"\n")
    sys.stdout.flush()
    os._exit(0)


client.on_message = received
client.connect(parts.hostname, parts.port)
client.loop_forever()
