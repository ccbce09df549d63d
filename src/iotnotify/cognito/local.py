"""The local stack's Cognito Identity: the two calls a client makes for keys from an identity pool
(GetId, GetCredentialsForIdentity), answered with keys the local issuer mints, so that the wss
front checks their signature and AWS's rules apply their policy: the keys endpoint's session policy
for a client id that is the identity id (as `${cognito-identity.amazonaws.com:sub}` in an AWS role's
policy), with the private topic PREFIX/<identity id>. Logins are accepted as given: the local stack
verifies no identity provider's tokens; an identity got with logins is authenticated, and AWS IoT
then also asks the AWS IoT policies attached to it (local/iot_policies.py)."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

from iotnotify.server.config import EndpointConfig
from iotnotify.server.handler import Response

POOL_ID = "local:10ca1000-0000-4000-8000-000000000001"  # the local stack's one identity pool
COGNITO_PATH = "/cognito"
TARGET = "AWSCognitoIdentityService."
JSON_11 = {"Content-Type": "application/x-amz-json-1.1"}


def _error(status: int, kind: str, message: str) -> Response:
    return Response(status, {"__type": kind, "message": message}, dict(JSON_11))


MAX_IDENTITIES = 10_000  # identities remembered (a loop of GetId calls must not grow memory without bound)


class LocalCognito:
    """GetId and GetCredentialsForIdentity for POOL_ID; identities are remembered while the stack
    runs, the last MAX_IDENTITIES of them (the client asks for a new one when its own is forgotten)."""

    def __init__(self, config: EndpointConfig, issuer: Any, limit: int = MAX_IDENTITIES) -> None:
        self.config = config
        self.issuer = issuer
        self.limit = limit
        self._identities: dict[str, bool] = {}  # -> authenticated, in the order made: the oldest is forgotten first
        self._lock = threading.Lock()

    def answer(self, target: str | None, body: bytes) -> Response:
        """The answer to one POST (its X-Amz-Target and JSON body), as Cognito Identity gives it."""
        try:
            request = json.loads(body or b"{}")
        except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
            return _error(400, "SerializationException", "the body is not JSON")
        if not isinstance(request, dict):
            return _error(400, "SerializationException", "the body is not a JSON object")
        action = (target or "").removeprefix(TARGET)
        if action == "GetId":
            return self._get_id(request)
        if action == "GetCredentialsForIdentity":
            return self._credentials(request)
        return _error(400, "UnknownOperationException", f"iotnotify local answers GetId and "
                                                        f"GetCredentialsForIdentity, not {action or 'nothing'}")

    def _get_id(self, request: dict[str, Any]) -> Response:
        if request.get("IdentityPoolId") != POOL_ID:
            return _error(400, "ResourceNotFoundException", f"IdentityPool '{request.get('IdentityPoolId')}' "
                                                            f"not found (the local pool is {POOL_ID})")
        identity = f"local:{uuid.uuid4()}"
        logins = request.get("Logins")
        with self._lock:
            while len(self._identities) >= self.limit:
                del self._identities[next(iter(self._identities))]
            self._identities[identity] = isinstance(logins, dict) and bool(logins)
        return Response(200, {"IdentityId": identity}, dict(JSON_11))

    def _credentials(self, request: dict[str, Any]) -> Response:
        identity = request.get("IdentityId")
        with self._lock:
            known = isinstance(identity, str) and identity in self._identities
            authenticated = isinstance(identity, str) and self._identities.get(identity, False)
        if not known:
            return _error(400, "ResourceNotFoundException", f"Identity '{identity}' not found")
        assert isinstance(identity, str)  # noqa: S101 - known above
        where = self.issuer.where()
        prefix = self.config.private_prefix
        private = f"{prefix.rstrip('/')}/{identity}" if prefix else None
        policy = self.config.session_policy(where.region, where.account, identity, list(self.config.topics), private,
                                            where.partition)
        keys = self.issuer.issue(identity, policy, self.config.lifetime, identity=identity, authenticated=authenticated)
        return Response(200, {"IdentityId": identity, "Credentials": {
            "AccessKeyId": keys.access_key, "SecretKey": keys.secret_key, "SessionToken": keys.session_token,
            "Expiration": keys.expiration.timestamp()}}, dict(JSON_11))
