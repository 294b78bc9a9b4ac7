"""Plain helpers for the identity API interop tests (no fixtures here; see conftest.py).

Everything talks to real processes over loopback: keygate (target/debug/keygate) and the
OpenID provider from tests/oidc (npm `oidc-provider`).
"""

import base64
import datetime
import hashlib
import http.cookies
import json
import secrets
import socket
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
# tests/oidc/provider.mjs: the agent-m2m-post client (client credentials, client_secret_post only)
M2M_POST_SECRET = "m2m-post-secret"


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


def signed_parts(
    base_url: str,
    path: str,
    body,
    *,
    secret: str,
    access_key: str = ACCESS_KEY_ID,
    region: str = REGION,
    signed_at: datetime.datetime | None = None,
    sign: bool = True,
) -> tuple[dict, bytes]:
    """The headers and body of a POST of `body` (a dict, sent as JSON, or bytes) to `path`,
    signed with SigV4 exactly as botocore signs (service `bedrock-agentcore`).

    `signed_at` signs with that time instead of now (botocore.auth takes the time from
    `get_current_datetime`, patched here for the whole process: sign such requests before
    sending others from several threads). `sign=False` leaves the request unsigned.
    """
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = AWSRequest(
        method="POST",
        url=base_url + path,
        data=data,
        # One id per request, signed, as botocore's retry handler sends: two requests signed
        # in the same second with the same body are still two requests, not one replayed.
        headers={"Content-Type": "application/json", "amz-sdk-invocation-id": str(uuid.uuid4())},
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
    return headers, prepared.body


def signed_request(
    base_url: str,
    path: str,
    body,
    *,
    send_body: bytes | None = None,
    **signing,
) -> requests.Response:
    """POSTs `body` to `path`, signed as `signed_parts` signs it (its keyword arguments apply).
    `send_body` sends other bytes than the ones signed."""
    headers, data = signed_parts(base_url, path, body, **signing)
    return requests.post(
        base_url + path,
        data=send_body if send_body is not None else data,
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
    redirect URI) and returns it; fetches it too (one GET, kept in `app_response`) only when
    asked to with `follow_to_app`, as a real browser lands on the app.
    """

    def __init__(self, issuer: str, keygate_url: str):
        self.issuer = issuer
        self.keygate_url = keygate_url
        self.session = requests.Session()
        # Node may close a kept-alive connection between the steps: one connection per step.
        self.session.headers["Connection"] = "close"
        self.visited: list[tuple[str, int, str | None]] = []
        self.app_response: requests.Response | None = None

    def _ours(self, url: str) -> bool:
        return url.startswith(self.issuer + "/") or url.startswith(
            self.keygate_url + "/identities/oauth2/"
        )

    def drive(self, url: str, login: str, *, follow_to_app: bool = False) -> str:
        form = None
        for _ in range(30):
            if not self._ours(url):
                if follow_to_app:
                    response = self.session.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT)
                    location = response.headers.get("Location")
                    self.visited.append((url, response.status_code, location))
                    self.app_response = response
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


# --- The agent's web app at its return URL ------------------------------------------------------


class ReturnApp:
    """The agent's own web app, serving its return URL: http.server in a thread on 127.0.0.1
    (a free port). Use it as a context manager.

    `GET /sign-in?user=U` signs a browser in (a cookie, path /cb, so it never reaches keygate or
    the provider on the same host). `GET /cb` is where keygate's final redirect lands after
    consent: the app reads `session_id` from the query and confirms the session for the user
    signed in to it with `complete(session_id, user)`, then answers 200 "signed in" (401 with
    nobody signed in, 400 without a session id, 502 when `complete` raises). Every visit to /cb
    is kept in `returns` as {"query", "user", "status", "error"}.
    """

    COOKIE = "app_user"

    def __init__(self, complete):
        self.complete = complete
        self.returns: list[dict] = []
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                app._handle(self)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.url = self.base_url + "/cb"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> "ReturnApp":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def sign_in(self, session: requests.Session, user: str) -> None:
        """Signs the browser with this `session` in to the app as `user`."""
        response = session.get(
            self.base_url + "/sign-in", params={"user": user}, timeout=HTTP_TIMEOUT
        )
        assert response.status_code == 200, response.text

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(request.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        if parts.path == "/sign-in" and query.get("user"):
            cookie = f"{self.COOKIE}={urllib.parse.quote(query['user'])}; Path=/cb; HttpOnly"
            return self._answer(request, 200, "welcome", cookie)
        if parts.path != "/cb":
            return self._answer(request, 404, "not found")
        cookies = http.cookies.SimpleCookie(request.headers.get("Cookie", ""))
        user = urllib.parse.unquote(cookies[self.COOKIE].value) if self.COOKIE in cookies else None
        visit = {"query": query, "user": user, "status": None, "error": None}
        self.returns.append(visit)
        if user is None:
            visit["status"] = 401
            return self._answer(request, 401, "not signed in")
        if "session_id" not in query:
            visit["status"] = 400
            return self._answer(request, 400, "no session_id")
        try:
            self.complete(query["session_id"], user)
        except Exception as error:  # the test reads it from `returns`
            visit["status"], visit["error"] = 502, error
            return self._answer(request, 502, f"could not complete the session: {error}")
        visit["status"] = 200
        self._answer(request, 200, "signed in")

    @staticmethod
    def _answer(request, status: int, text: str, cookie: str | None = None) -> None:
        body = text.encode()
        request.send_response(status)
        request.send_header("Content-Type", "text/plain; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        if cookie:
            request.send_header("Set-Cookie", cookie)
        request.end_headers()
        request.wfile.write(body)


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
