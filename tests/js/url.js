// Connect MQTT.js (the one aws-iot-device-sdk brings) with a presigned wss:// URL (`iotnotify keys --url`)
// as client id argv[3], subscribe to argv[4], publish there and print what comes back. Exit 0 on
// success, 2 on error (the CA comes from NODE_EXTRA_CA_CERTS).
const mqtt = require('mqtt');
const [url, clientId, topic] = process.argv.slice(2);
const client = mqtt.connect(url, { clientId, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000 });
const fail = (why) => { console.error('error: ' + why); process.exit(2); };
setTimeout(() => fail('timeout'), 10000);
client.on('error', (e) => fail(e && e.message || String(e)));
client.on('close', () => fail('closed'));
client.on('connect', () => {
  client.subscribe(topic, { qos: 1 }, (err) => err ? fail(err.message) : client.publish(topic, 'hello over the url', { qos: 1 }));
});
client.on('message', (t, payload) => { console.log(payload.toString()); client.removeAllListeners('close'); client.end(true, () => process.exit(0)); });
