// The tutorial's SDK (aws-iot-device-sdk, MQTT 3.1.1 over wss) against AWS IoT Core's rules, with keys
// (JSON) from stdin: `node rules.js subscribe FILTER...` subscribes to all the filters in one SUBSCRIBE
// and prints the granted QoS of each ("128" is a refusal); `node rules.js publish TOPIC` publishes
// with QoS 1 and prints "acknowledged" or "closed" (the broker closed the connection). Exit 0 when it
// could tell, 2 on an error or a timeout.
const awsIot = require('aws-iot-device-sdk');
const keys = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const [action, ...names] = process.argv.slice(2);
const device = awsIot.device({
  protocol: 'wss', host: keys.iotEndpoint, port: keys.port || 443, region: keys.region,
  accessKeyId: keys.accessKey, secretKey: keys.secretKey, sessionToken: keys.sessionToken,
  clientId: (keys.clientId || 'tutorial') + '-rules', autoResubscribe: false, offlineQueueing: false,
});
const done = (line, code) => { console.log(line); process.exit(code); };
setTimeout(() => done('timeout', 2), 10000);
let connected = false;
device.on('error', (e) => { if (!connected) done('error: ' + (e && e.message || String(e)), 2); });
device.on('close', () => { if (connected) done('closed', 0); });
device.on('connect', () => {
  connected = true;
  if (action === 'subscribe') {
    device.subscribe(names, { qos: 1 }, (err, granted) => {
      if (err) done(/closed/i.test(err.message) ? 'closed' : 'error: ' + err.message, /closed/i.test(err.message) ? 0 : 2);
      else done(granted.map((g) => g.qos).join(' '), 0);
    });
  } else if (action === 'publish') {
    device.publish(names[0], 'from the tutorial sdk', { qos: 1 }, (err) => done(err ? 'error: ' + err.message : 'acknowledged', err ? 2 : 0));
  } else {
    done('unknown action ' + action, 2);
  }
});
