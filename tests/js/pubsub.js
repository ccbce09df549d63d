// Connect with the tutorial's SDK (aws-iot-device-sdk) over wss with keys from stdin (JSON), then
// subscribe, publish one message and print it when it comes back. Exit 0 on success, 2 on error.
const awsIot = require('aws-iot-device-sdk');
const keys = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const topic = process.argv[2];
const device = awsIot.device({
  protocol: 'wss', host: keys.iotEndpoint, port: keys.port || 443, region: keys.region,
  accessKeyId: keys.accessKey, secretKey: keys.secretKey, sessionToken: keys.sessionToken,
  clientId: (keys.clientId || 'tutorial') + '-js', maximumReconnectTimeMs: 1000,
});
const fail = (why) => { console.error('error: ' + why); process.exit(2); };
setTimeout(() => fail('timeout'), 10000);
device.on('error', (e) => fail(e && e.message || String(e)));
device.on('offline', () => fail('offline'));
device.on('connect', () => {
  device.subscribe(topic, { qos: 1 }, () => device.publish(topic, 'hello from the tutorial sdk', { qos: 1 }));
});
device.on('message', (t, payload) => { console.log(payload.toString()); device.end(true, () => process.exit(0)); });
