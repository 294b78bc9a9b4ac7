"""Plain helpers for the identity API interop tests (no fixtures here; see conftest.py).

Everything talks to real processes over loopback: keygate (target/debug/keygate) and the
OpenID provider from tests/oidc (npm `oidc-provider`).
"""

import base64
import datetime
import hashlib
import json
import secrets
import socket
import urllib.parse
from unittest import mock

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-west-2"
ACCOUNT_ID = "123456789012"
ACCESS_KEY_ID = "AKIDKEYGATEEXAMPLE"
SIGNING_NAME = "bedrock-agentcore"
# Return URL registered for the config-defined workload (and for the SDK's workloads in tests).
RETURN_URL = "https://myapp.example.com/cb"
# Where the web client sends its codes when a test logs a user in for a user JWT; never fetched.
USER_REDIRECT = "http://127.0.0.1:9/user-cb"
HTTP_TIMEOUT = 15

# Secrets of this run, random so that a scan of the audit log for them means something.
API_SECRET = "sigv4-" + secrets.token_hex(20)  # [[api.credentials]] secret_access_key
WEATHER_KEY = "weather-" + secrets.token_hex(16)  # the config-defined api_key provider's key
WEB_SECRET = "web-secret"  # tests/oidc/provider.mjs: the web-app client (auth code + PKCE)
M2M_SECRET = "m2m-secret"  # tests/oidc/provider.mjs: the agent-m2m client (client credentials)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_parts(token: str) -> tuple[dict, dict]:
    """The (unverified) header and payload of a JWT; fails unless it has three parts."""
    parts = token.split(".")
    assert len(parts) == 3, f"not a JWT (three parts): {token[:40]}..."

    def decode(part: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

    return decode(parts[0]), decode(parts[1])


def jwt_claims(token: str) -> dict:
    return jwt_parts(token)[1]


def query_of(url: str) -> dict:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


# --- SigV4 requests built by hand ---------------------------------------------------------------


def signed_request(
    base_url: str,
    path: str,
    body,
    *,
    secret: str,
    access_key: str = ACCESS_KEY_ID,
    region: str = REGION,
    signed_at: datetime.datetime | None = None,
    send_body: bytes | None = None,
    sign: bool = True,
) -> requests.Response:
    """POSTs `body` (a dict, sent as JSON, or bytes) to `path`, signed with SigV4 exactly as
    botocore signs (service `bedrock-agentcore`).

    `signed_at` signs with that time instead of now (botocore.auth takes the time from
    `get_current_datetime`, patched here). `send_body` sends other bytes than the ones signed.
    `sign=False` sends the request with no signature at all.
    """
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = AWSRequest(
        method="POST",
        url=base_url + path,
        data=data,
        headers={"Content-Type": "application/json"},
    )
    if sign:
        signer = SigV4Auth(Credentials(access_key, secret), SIGNING_NAME, region)
        if signed_at is None:
            signer.add_auth(request)
        else:
            naive_utc = signed_at.astimezone(datetime.timezone.utc).replace(tzinfo=None)
            with mock.patch(
                "botocore.auth.get_current_datetime",
                lambda remove_tzinfo=True: naive_utc,
            ):
                signer.add_auth(request)
    prepared = request.prepare()
    headers = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
    return requests.post(
        base_url + path,
        data=send_body if send_body is not None else prepared.body,
        headers=headers,
        timeout=HTTP_TIMEOUT,
    )


def assert_aws_error(response: requests.Response, status: int, error_type: str) -> str:
    """Checks AWS's REST-JSON error shape; returns the message."""
    assert response.status_code == status, (response.status_code, response.headers, response.text)
    # AWS may append ":<namespace>" to the type; botocore keeps the part before the colon.
    assert response.headers.get("X-Amzn-ErrorType", "").split(":")[0] == error_type, dict(
        response.headers
    )
    assert response.headers.get("x-amzn-RequestId"), "every response carries x-amzn-RequestId"
    body = response.json()
    assert isinstance(body.get("message"), str) and body["message"], body
    return body["message"]


def client_error(excinfo) -> tuple[str, int, str]:
    """(code, HTTP status, message) of a botocore ClientError caught with pytest.raises."""
    response = excinfo.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"].get("Message", ""),
    )


# --- A browser, played headlessly ---------------------------------------------------------------


class Browser:
    """Follows redirects by hand through keygate's /identities/oauth2/* endpoints and the
    OpenID provider's login and consent pages (devInteractions), keeping cookies.

    Stops at the first URL that belongs to neither (the app's return URL, or a client's
    redirect URI) and returns it without fetching it.
    """

    def __init__(self, issuer: str, keygate_url: str):
        self.issuer = issuer
        self.keygate_url = keygate_url
        self.session = requests.Session()
        # Node may close a kept-alive connection between the steps: one connection per step.
        self.session.headers["Connection"] = "close"
        self.visited: list[tuple[str, int, str | None]] = []

    def _ours(self, url: str) -> bool:
        return url.startswith(self.issuer + "/") or url.startswith(
            self.keygate_url + "/identities/oauth2/"
        )

    def drive(self, url: str, login: str) -> str:
        form = None
        for _ in range(30):
            if not self._ours(url):
                return url
            if form is not None:
                response = self.session.post(
                    url, data=form, allow_redirects=False, timeout=HTTP_TIMEOUT
                )
            else:
                response = self.session.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT)
            form = None
            location = response.headers.get("Location")
            self.visited.append((url, response.status_code, location))
            if response.is_redirect:
                url = urllib.parse.urljoin(url, location)
                continue
            assert (
                response.status_code == 200
            ), f"unexpected answer {response.status_code} at {url}: {response.text[:500]}"
            assert url.startswith(self.issuer), f"a page outside the provider: {url}"
            if 'name="login"' in response.text:
                form = {"prompt": "login", "login": login, "password": "any"}
            else:
                form = {"prompt": "consent"}
        raise AssertionError(f"the consent dance did not end: {self.visited}")


def user_jwt(issuer: str, keygate_url: str, login: str) -> str:
    """A real access token (RS256 JWT, aud "agents") for user `login` from the OpenID provider:
    authorization code + PKCE with the `web-app` client."""
    verifier = b64url(secrets.token_bytes(32))
    challenge = b64url(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(8)
    url = (
        issuer
        + "/auth?"
        + urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": "web-app",
                "redirect_uri": USER_REDIRECT,
                "scope": "openid",
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
    )
    final = Browser(issuer, keygate_url).drive(url, login)
    assert final.startswith(USER_REDIRECT), final
    query = query_of(final)
    assert query.get("state") == state and "code" in query, final
    response = requests.post(
        issuer + "/token",
        auth=("web-app", WEB_SECRET),
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": USER_REDIRECT,
            "code_verifier": verifier,
        },
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    claims = jwt_claims(token)
    assert claims["sub"] == login and claims["aud"] == "agents", claims
    return token
