// MQTT.js over wss: publish MESSAGE (or each stdin line with -l) to TOPIC at QoS, then disconnect.
// usage: node send.js URL CA_FILE TOPIC QOS (MESSAGE | -l)
// MQTT.js numbers messages 1 to 65535 and, with more than that unacknowledged, reuses numbers still
// in use and never settles some publishes (seen: a run that hung): at most 50,000 wait at a time.
require('events').defaultMaxListeners = 0;  // one drain listener per publish in flight
const mqtt = require('mqtt');
const fs = require('fs');
const readline = require('readline');
const WINDOW = 50000;
const [url, ca, topic, qos, message] = process.argv.slice(2);
const client = mqtt.connect(url, { ca: fs.readFileSync(ca), protocolVersion: 4, clean: true, reconnectPeriod: 0 });
client.on('error', (e) => { console.error(e.message); process.exit(2); });
client.on('connect', async () => {
  const options = { qos: Number(qos) };
  if (message !== '-l') {
    await client.publishAsync(topic, message, options);
  } else {
    const pending = [];
    let oldest = 0;
    for await (const line of readline.createInterface({ input: process.stdin })) {
      if (pending.length - oldest >= WINDOW) {
        await pending[oldest++];
      }
      pending.push(client.publishAsync(topic, line, options));
    }
    await Promise.all(pending.slice(oldest));
  }
  client.end(false, () => process.exit(0));
});
