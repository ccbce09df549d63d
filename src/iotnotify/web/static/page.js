// The tutorial's page: Retrieve Keys, Connect, Send, and a log. Keys come from the keys endpoint
// (iot/keys, beside this page); the connection is MQTT over WebSocket (MQTT.js), its URL presigned
// with SigV4 (aws4fetch, WebCrypto) for the service iotdevicegateway, the session token appended
// after signing as AWS IoT wants. Keys are refreshed before they expire, and a lost connection is
// made again with fresh keys. Nothing here stores or shows the secret key or the session token.
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || '';
  const KEYS_URL = meta('iotnotify-keys-url') || 'iot/keys';
  const MQTT_URL = meta('iotnotify-mqtt-url'); // the local stack's ws:// listener; else wss://iotEndpoint/mqtt
  const COGNITO_POOL = meta('iotnotify-cognito-pool'); // keys may also come from this identity pool...
  const COGNITO_URL = meta('iotnotify-cognito-url') || // ...at Cognito Identity's regional endpoint, or local's
    (COGNITO_POOL ? `https://cognito-identity.${COGNITO_POOL.split(':')[0]}.amazonaws.com/` : '');
  const REQUIRED = ['iotEndpoint', 'region', 'accessKey', 'secretKey', 'sessionToken'];
  const MAX_LOG = 500;

  const page = { keys: null, client: null, state: 'idle', clientId: null, wanted: false, attempt: 0,
                 refreshTimer: null, reconnectTimer: null, subscribed: new Set() };
  window.iotnotifyPage = page; // for the tests (and the curious): what the page knows, never shown secrets

  function time() { return new Date().toTimeString().slice(0, 8); }

  function log(kind, topic, text) {
    const item = document.createElement('li');
    item.className = kind;
    const when = document.createElement('span');
    when.className = 'time';
    when.textContent = time();
    item.append(when, ' ');
    if (topic) {
      const where = document.createElement('span');
      where.className = 'topic';
      where.textContent = topic;
      item.append(where, ' ');
    }
    item.append(document.createTextNode(text));
    const list = $('log');
    list.append(item);
    while (list.children.length > MAX_LOG) list.firstElementChild.remove();
    list.scrollTop = list.scrollHeight; // newest at the bottom, in view
  }

  function setState(state, text) {
    page.state = state;
    const badge = $('state');
    badge.className = `state ${state}`;
    badge.textContent = text;
    $('connect').disabled = !page.keys || state === 'connected' || state === 'connecting';
    $('disconnect').disabled = state !== 'connected' && state !== 'connecting' && state !== 'reconnecting';
    $('send').disabled = state !== 'connected';
  }

  function fail(text) {
    setState('error', text);
    log('error', '', text);
  }

  // --- keys -----------------------------------------------------------------------------------
  function expiresAt(keys) {
    const when = keys.expiration ? Date.parse(keys.expiration) : NaN;
    return Number.isNaN(when) ? keys.fetchedAt + 3600 * 1000 : when; // the tutorial's endpoint: an hour
  }

  async function fetchKeys() {
    return $('source').value === 'cognito' ? cognitoKeys() : endpointKeys();
  }

  async function cognito(action, body) {
    let response;
    try {
      response = await fetch(COGNITO_URL, { method: 'POST', body: JSON.stringify(body), cache: 'no-store', headers: {
        'Content-Type': 'application/x-amz-json-1.1', 'X-Amz-Target': `AWSCognitoIdentityService.${action}` } });
    } catch (e) {
      throw new Error(`Cognito is unreachable (${e.message})`);
    }
    let data = {};
    try { data = await response.json(); } catch (e) { /* said below */ }
    if (!response.ok) {
      throw new Error(`Cognito ${action} failed: HTTP ${response.status} ${(data.__type || '').split('#').pop()} ` +
                      `${data.message || ''}`.trim());
    }
    return data;
  }

  // Keys from the identity pool: an identity (kept for the page's life, as the SDKs keep it), then its
  // credentials; the IoT endpoint from the keys endpoint, as Cognito does not say it.
  async function cognitoKeys() {
    if (!page.identity) page.identity = (await cognito('GetId', { IdentityPoolId: COGNITO_POOL })).IdentityId;
    const answer = await cognito('GetCredentialsForIdentity', { IdentityId: page.identity });
    const credentials = answer.Credentials || {};
    const where = page.where || (page.where = await endpointKeys());
    return { iotEndpoint: where.iotEndpoint, port: where.port, region: COGNITO_POOL.split(':')[0],
             accessKey: credentials.AccessKeyId, secretKey: credentials.SecretKey,
             sessionToken: credentials.SessionToken,
             expiration: new Date(credentials.Expiration * 1000).toISOString(), clientId: page.identity,
             topics: where.topics, fetchedAt: Date.now(), source: 'cognito' };
  }

  async function endpointKeys() {
    let response;
    try {
      response = await fetch(KEYS_URL, { cache: 'no-store', headers: { Accept: 'application/json' } });
    } catch (e) {
      throw new Error(`the keys endpoint is unreachable (${e.message})`);
    }
    const body = await response.text();
    let data;
    try { data = JSON.parse(body); } catch (e) {
      throw new Error(`the keys endpoint answered HTTP ${response.status}, not JSON`);
    }
    if (!response.ok) throw new Error(`the keys endpoint answered HTTP ${response.status}: ${data.message || ''}`);
    for (const field of REQUIRED) {
      if (typeof data[field] !== 'string' || !data[field]) throw new Error(`the keys have no ${field}`);
    }
    data.fetchedAt = Date.now();
    return data;
  }

  function showKeys(keys) {
    $('keys').hidden = false;
    $('key-endpoint').textContent = `${keys.iotEndpoint}:${keys.port || 443}`;
    $('key-region').textContent = keys.region;
    $('key-access').textContent = keys.accessKey;
    $('key-client').textContent = keys.clientId || '(any)';
    $('key-topics').textContent = (keys.topics || []).join(', ') || '(not listed)';
    $('key-expires').textContent = new Date(expiresAt(keys)).toISOString().replace('.000', '');
    const topic = $('topic');
    if (!topic.dataset.edited && keys.topics && keys.topics.length) {
      const first = keys.topics[0];
      topic.value = first.endsWith('/*') ? `${first.slice(0, -2)}/page` : first;
    }
  }

  function scheduleRefresh() {
    clearTimeout(page.refreshTimer);
    const keys = page.keys;
    const lifetime = expiresAt(keys) - keys.fetchedAt;
    const margin = Math.min(5 * 60 * 1000, lifetime / 4);
    const due = Math.max(expiresAt(keys) - margin - Date.now(), 1000);
    page.refreshTimer = setTimeout(refreshKeys, due);
  }

  async function refreshKeys() {
    try {
      page.keys = await fetchKeys();
      showKeys(page.keys);
      scheduleRefresh();
      log('note', '', `keys refreshed: they expire at ${$('key-expires').textContent}`);
    } catch (e) {
      log('error', '', `could not refresh the keys: ${e.message}; trying again in 30 s`);
      page.refreshTimer = setTimeout(refreshKeys, 30 * 1000);
    }
  }

  async function retrieve() {
    $('retrieve').disabled = true;
    try {
      page.keys = await fetchKeys();
      showKeys(page.keys);
      scheduleRefresh();
      log('note', '', `keys retrieved for ${page.keys.iotEndpoint} (${page.keys.region})`);
      if (page.state === 'idle' || page.state === 'error') setState('idle', 'keys ready: connect');
      else setState(page.state, $('state').textContent);
    } catch (e) {
      fail(e.message);
    } finally {
      $('retrieve').disabled = false;
    }
  }

  // --- what the keys allow (as the CLI checks before sending: a refusal on AWS closes the connection)
  function allows(keys, topic) {
    const listed = (keys.topics || []).concat(keys.privateTopic ? [keys.privateTopic] : []);
    if (!keys.topics) return true; // the tutorial's endpoint lists none: only the broker knows
    return listed.some((t) => t === topic || (t.endsWith('/*') && topic.startsWith(t.slice(0, -1))));
  }

  // --- the connection -------------------------------------------------------------------------
  async function signedUrl(keys) {
    const port = keys.port || 443;
    const url = MQTT_URL || `wss://${keys.iotEndpoint}${port === 443 ? '' : `:${port}`}/mqtt`;
    const signer = new aws4fetch.AwsV4Signer({
      url, accessKeyId: keys.accessKey, secretAccessKey: keys.secretKey, sessionToken: keys.sessionToken,
      service: 'iotdevicegateway', region: keys.region, signQuery: true,
    });
    return (await signer.sign()).url.toString();
  }

  function newClientId(keys) {
    const random = Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => b.toString(16).padStart(2, '0')).join('');
    return keys.clientId ? `${keys.clientId}-page-${random}` : `page-${random}${random}`;
  }

  async function connect(automatic) {
    clearTimeout(page.reconnectTimer);
    page.wanted = true;
    if (automatic && Date.now() > expiresAt(page.keys) - 60 * 1000) {
      try { page.keys = await fetchKeys(); showKeys(page.keys); scheduleRefresh(); } catch (e) { /* said below */ }
    }
    const keys = page.keys;
    if (!keys) return fail('retrieve keys first');
    if (Date.now() > expiresAt(keys)) return fail('the keys have expired: retrieve new keys');
    const topic = $('topic').value.trim();
    if (!allows(keys, topic)) {
      return fail(`the keys do not allow topic '${topic}' (they allow ${(keys.topics || []).join(', ')})`);
    }
    if (!automatic || !page.clientId || !page.clientId.startsWith(`${keys.clientId}-`)) page.clientId = newClientId(keys);
    setState('connecting', automatic ? `reconnecting (attempt ${page.attempt})` : 'connecting');
    let url;
    try { url = await signedUrl(keys); } catch (e) { return fail(`cannot sign the connection: ${e.message}`); }
    let opened = false;
    const client = mqtt.connect(url, { clientId: page.clientId, protocolVersion: 4, clean: true, keepalive: 60,
                                       reconnectPeriod: 0, connectTimeout: 10 * 1000 });
    page.client = client;
    client.on('connect', () => {
      opened = true;
      page.attempt = 0;
      setState('connected', `connected as ${page.clientId}`);
      log('note', '', `connected to ${new URL(url).host} as ${page.clientId}`);
      page.subscribed.clear();
      subscribe(topic);
    });
    client.on('message', (where, payload) => {
      log('received', where, new TextDecoder('utf-8', { fatal: false }).decode(payload));
    });
    client.on('error', (e) => { page.lastError = e && e.message; });
    client.on('close', () => {
      if (page.client !== client) return; // an old client: replaced already
      client.removeAllListeners();
      client.end(true);
      page.client = null;
      if (!page.wanted) return;
      if (!opened && !automatic) {
        return fail(`could not connect to ${new URL(url).host}: the broker refused the keys (expired or not ` +
                    'accepted) or is unreachable');
      }
      page.attempt += 1;
      const delay = Math.min(1000 * 2 ** (page.attempt - 1), 30 * 1000);
      setState('reconnecting', `connection lost: reconnecting in ${Math.round(delay / 1000)} s`);
      log('error', '', `connection lost${page.lastError ? ` (${page.lastError})` : ''}: reconnecting with fresh keys`);
      page.reconnectTimer = setTimeout(() => reconnect(), delay);
    });
  }

  async function reconnect() {
    try { page.keys = await fetchKeys(); showKeys(page.keys); scheduleRefresh(); } catch (e) {
      log('error', '', `could not get new keys: ${e.message}`);
    }
    connect(true);
  }

  function subscribe(topic) {
    const client = page.client;
    if (!client || page.subscribed.has(topic)) return;
    if (!allows(page.keys, topic)) {
      log('error', topic, `not subscribed: the keys do not allow it (they allow ${(page.keys.topics || []).join(', ')})`);
      return;
    }
    client.subscribe(topic, { qos: 1 }, (error, granted) => {
      if (error || !granted || !granted.length || granted[0].qos === 128) {
        log('error', topic, `subscription refused by the broker${error ? `: ${error.message}` : ''}`);
      } else {
        page.subscribed.add(topic);
        log('note', topic, 'subscribed');
      }
    });
  }

  function disconnect() {
    page.wanted = false;
    clearTimeout(page.reconnectTimer);
    const client = page.client;
    page.client = null;
    if (client) client.end();
    setState('idle', 'disconnected');
    log('note', '', 'disconnected');
  }

  function send() {
    const topic = $('topic').value.trim();
    const text = $('message').value;
    if (!page.client || page.state !== 'connected') return fail('connect first');
    if (!topic || topic.includes('+') || topic.includes('#')) return log('error', topic, 'not sent: give an exact topic');
    if (!allows(page.keys, topic)) {
      return log('error', topic, `not sent: the keys do not allow it (they allow ${(page.keys.topics || []).join(', ')})`);
    }
    page.client.publish(topic, text, { qos: 1 }, (error) => {
      if (error) log('error', topic, `not sent: ${error.message}`);
      else log('sent', topic, text);
    });
    $('message').value = '';
  }

  if (COGNITO_POOL) {
    $('source-choice').hidden = false;
    $('source').addEventListener('change', () => { page.keys = null; setState('idle', 'no keys yet'); });
  }
  $('retrieve').addEventListener('click', retrieve);
  $('connect').addEventListener('click', () => connect(false));
  $('disconnect').addEventListener('click', disconnect);
  $('send').addEventListener('click', send);
  $('message').addEventListener('keydown', (e) => { if (e.key === 'Enter') send(); });
  $('topic').addEventListener('change', () => {
    $('topic').dataset.edited = '1';
    if (page.state === 'connected') subscribe($('topic').value.trim());
  });
  setState('idle', 'no keys yet');
}());
