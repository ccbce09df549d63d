"""A presigned `wss://HOST/mqtt?X-Amz-...` URL for a set of keys: any MQTT-over-WebSocket client
(MQTT.js, MQTTX, MQTT Explorer, a browser) connects with it, as AWS IoT Core takes it.

Signed by awscrt (the signer the SDKs use) for the service `iotdevicegateway`, with the session
token appended after signing, as AWS IoT's clients do (the Developer Guide, "Connecting with MQTT
over WebSocket": the token is not part of the signed request)."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

from iotnotify.keys.model import TemporaryKeys

SERVICE = "iotdevicegateway"
MAX_EXPIRES = 7 * 24 * 3600  # s, SigV4's longest presigned URL


def presigned_url(keys: TemporaryKeys, now: dt.datetime | None = None) -> str:
    """The URL, valid from `now` until the keys expire (X-Amz-Expires), at most 7 days."""
    from awscrt import auth, http

    now = now or dt.datetime.now(dt.UTC)
    host = keys.host if keys.port == 443 else f"{keys.host}:{keys.port}"
    lifetime = max(1, min(int(keys.expires_in(now)), MAX_EXPIRES))
    request = http.HttpRequest("GET", "/mqtt", http.HttpHeaders([("host", host)]))
    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4, signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
        credentials_provider=auth.AwsCredentialsProvider.new_static(keys.access_key, keys.secret_key),
        region=keys.region, service=SERVICE, date=now, omit_session_token=True, expiration_in_seconds=lifetime)
    signed = auth.aws_sign_request(request, config).result(5)
    token = f"&X-Amz-Security-Token={quote(keys.session_token, safe='')}" if keys.session_token else ""
    return f"wss://{host}{signed.path}{token}"
