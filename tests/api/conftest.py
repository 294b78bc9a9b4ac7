"""Fixtures for the identity API interop tests: a real OpenID provider (tests/oidc, node), a real
keygate process (target/debug/keygate) configured for it, boto3 clients, and the environment
AWS's `bedrock-agentcore` SDK reads. Run through tests/api/run.sh.

`bedrock_agentcore` reads its endpoint overrides when it is imported: tests import it inside the
test functions, after the `keygate` fixture has set the environment.
"""

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
import requests
from botocore.config import Config

import helpers
from helpers import (
    ACCESS_KEY_ID,
    ACCOUNT_ID,
    API_SECRET,
    M2M_SECRET,
    REGION,
    RETURN_URL,
    USER_REDIRECT,
    WEATHER_KEY,
    WEB_SECRET,
    free_port,
)

REPO = Path(__file__).resolve().parents[2]
KEYGATE_BIN = Path(os.environ.get("KEYGATE_BIN", REPO / "target" / "debug" / "keygate"))
OIDC_DIR = REPO / "tests" / "oidc"

CONFIG_WORKLOAD = "ConfigAgent"
M2M_PROVIDER = "m2m"
USER_PROVIDER = "idp"
API_KEY_PROVIDER = "weather"


class Service:
    """A child process whose stdout and stderr go to a file (a pipe nobody reads would fill up,
    and node dies of EPIPE when its reader goes away)."""

    def __init__(
        self, name: str, argv: list[str], env: dict, log_dir: Path, cwd: Path | None = None
    ):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until(self, ready, what: str, timeout: float) -> None:
        """Polls `ready()` (exceptions count as not yet) until true; fails with the process's
        output if it exits or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                pytest.fail(f"{self.name} exited with {code} before {what}:\n{self.output()}")
            try:
                if ready():
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name}: no {what} within {timeout}s:\n{self.output()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


def keygate_config(
    *,
    port: int,
    admin: int,
    folder: Path,
    discovery_url: str,
    max_workloads: int,
    max_providers: int = 100,
) -> str:
    return f"""
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"
public_url = "http://127.0.0.1:{port}"

[vault]
store = "sqlite://{folder}/keygate.db"
key = "file:{folder}/vault.key"

[audit]
path = "{folder}/audit.jsonl"

[api]
region = "{REGION}"
account_id = "{ACCOUNT_ID}"
max_workload_identities = {max_workloads}
max_credential_providers = {max_providers}
default_authorizer = "corp"
[[api.credentials]]
access_key_id = "{ACCESS_KEY_ID}"
secret_access_key = "env:KEYGATE_API_SECRET"

[[authorizers]]
name = "corp"
discovery_url = "{discovery_url}"
allowed_audience = ["agents"]

[[workloads]]
name = "{CONFIG_WORKLOAD}"
authorizer = "corp"
allowed_return_urls = ["{RETURN_URL}"]

[[providers]]
name = "{API_KEY_PROVIDER}"
kind = "api_key"
api_key = "env:WEATHER_API_KEY"

[[providers]]
name = "{USER_PROVIDER}"
kind = "oauth2"
vendor = "custom"
discovery_url = "{discovery_url}"
client_id = "web-app"
client_secret = "env:WEB_SECRET"

[[providers]]
name = "{M2M_PROVIDER}"
kind = "oauth2"
vendor = "custom"
discovery_url = "{discovery_url}"
client_id = "agent-m2m"
client_secret = "env:M2M_SECRET"

# A proxied route (its upstream is never reached by these tests), so the proxy's metrics
# have a route to report.
[[routes]]
name = "tools"
path_prefix = "/tools/"
upstream = "http://127.0.0.1:9/"
authorizer = "corp"
workload = "{CONFIG_WORKLOAD}"
"""


class Keygate:
    def __init__(self, service: Service, port: int, admin: int, folder: Path):
        self.service = service
        self.url = f"http://127.0.0.1:{port}"
        self.admin_url = f"http://127.0.0.1:{admin}"
        self.callback_url = f"{self.url}/identities/oauth2/callback"
        self.folder = folder
        self.audit_path = folder / "audit.jsonl"

    def client(self, service_name: str, secret: str = API_SECRET, access_key: str = ACCESS_KEY_ID):
        """A boto3 client for `bedrock-agentcore` or `bedrock-agentcore-control` aimed at this
        keygate; no retries, so every test sees exactly one request's outcome."""
        return boto3.client(
            service_name,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret,
            config=Config(retries={"total_max_attempts": 1}, read_timeout=30, connect_timeout=5),
        )


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="session")
def keygate_ports():
    """The main keygate's ports, chosen before the OpenID provider starts (its web client must
    know keygate's callback URL)."""
    return free_port(), free_port()


@pytest.fixture(scope="session")
def oidc(run_dir, keygate_ports):
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("oidc-provider is not installed: run `npm ci` in tests/oidc (tests/run does)")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    keygate_callback = f"http://127.0.0.1:{keygate_ports[0]}/identities/oauth2/callback"
    env = dict(os.environ)
    env.update(
        OIDC_PORT=str(port),
        OIDC_KEYS=str(run_dir / "oidc-keys.json"),
        OIDC_REDIRECT_URIS=f"{keygate_callback},{USER_REDIRECT}",
    )
    service = Service("oidc-provider", ["node", str(OIDC_DIR / "provider.mjs")], env, run_dir)
    discovery_url = f"{issuer}/.well-known/openid-configuration"
    service.wait_until(
        lambda: requests.get(discovery_url, timeout=2).status_code == 200,
        "discovery document",
        timeout=30,
    )
    yield SimpleNamespace(issuer=issuer, discovery_url=discovery_url, service=service)
    service.stop()


@pytest.fixture(scope="session")
def start_keygate(run_dir, oidc):
    """Starts a keygate with the suite's config; `max_workloads` sets the API's quota. Every
    instance is stopped at the end of the session."""
    if not KEYGATE_BIN.is_file():
        pytest.fail(f"{KEYGATE_BIN} does not exist: build keygate first (cargo build)")
    started: list[Service] = []

    def start(
        name: str,
        *,
        max_workloads: int,
        max_providers: int = 100,
        ports: tuple[int, int] | None = None,
    ) -> Keygate:
        port, admin = ports or (free_port(), free_port())
        folder = run_dir / name
        folder.mkdir()
        config = folder / "routes.toml"
        config.write_text(
            keygate_config(
                port=port,
                admin=admin,
                folder=folder,
                discovery_url=oidc.discovery_url,
                max_workloads=max_workloads,
                max_providers=max_providers,
            )
        )
        env = dict(os.environ)
        env.update(
            KEYGATE_API_SECRET=API_SECRET,
            WEATHER_API_KEY=WEATHER_KEY,
            WEB_SECRET=WEB_SECRET,
            M2M_SECRET=M2M_SECRET,
            RUST_LOG=os.environ.get("RUST_LOG", "info"),
        )
        service = Service(
            f"keygate-{name}",
            [str(KEYGATE_BIN), "serve", "--config", str(config)],
            env,
            run_dir,
            cwd=folder,
        )
        started.append(service)
        keygate = Keygate(service, port, admin, folder)
        service.wait_until(
            lambda: requests.get(keygate.admin_url + "/readyz", timeout=2).status_code == 200,
            "200 from /readyz",
            timeout=30,
        )
        # Ready does not wait for authorizers' keys; the JWT tests need them.
        service.wait_until(
            lambda: "without signing keys"
            not in requests.get(keygate.admin_url + "/readyz", timeout=2).text,
            "signing keys for the authorizer",
            timeout=15,
        )
        return keygate

    yield start
    for service in started:
        service.stop()


@pytest.fixture(scope="session")
def keygate(start_keygate, keygate_ports):
    """The main keygate. Also sets the environment the SDK reads (before it is imported)."""
    instance = start_keygate("main", max_workloads=100, ports=keygate_ports)
    endpoints = sys.modules.get("bedrock_agentcore._utils.endpoints")
    if endpoints is not None and endpoints.DP_ENDPOINT_OVERRIDE != instance.url:
        pytest.fail("bedrock_agentcore was imported before its endpoint environment was set")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE", "DOCKER_CONTAINER"):
            mp.delenv(name, raising=False)
        mp.setenv("BEDROCK_AGENTCORE_DP_ENDPOINT", instance.url)
        mp.setenv("BEDROCK_AGENTCORE_CP_ENDPOINT", instance.url)
        mp.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        mp.setenv("AWS_SECRET_ACCESS_KEY", API_SECRET)
        mp.setenv("AWS_REGION", REGION)
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        # No shared config, instance metadata or retries: one request per call, nothing else.
        mp.setenv("AWS_CONFIG_FILE", str(instance.folder / "no-aws-config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(instance.folder / "no-aws-credentials"))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("AWS_RETRY_MODE", "standard")
        mp.setenv("AWS_MAX_ATTEMPTS", "1")
        yield instance


@pytest.fixture(autouse=True)
def own_cwd(tmp_path, monkeypatch):
    """Each test in its own working directory: the SDK's decorators keep `.agentcore.json` there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def cp(keygate):
    return keygate.client("bedrock-agentcore-control")


@pytest.fixture(scope="session")
def dp(keygate):
    return keygate.client("bedrock-agentcore")


@pytest.fixture
def raw(keygate):
    """POSTs a JSON body to an API path, SigV4-signed by hand (see helpers.signed_request)."""

    def send(path: str, body, **options) -> requests.Response:
        options.setdefault("secret", API_SECRET)
        return helpers.signed_request(keygate.url, path, body, **options)

    return send


@pytest.fixture
def browser(oidc, keygate):
    return helpers.Browser(oidc.issuer, keygate.url)


@pytest.fixture
def app(keygate):
    """The agent's web app at its return URL `app.url` (helpers.ReturnApp), on a free port: it
    confirms each session that comes back to it for its signed-in user with AWS's SDK,
    `IdentityClient(REGION).complete_resource_token_auth(session_id, UserIdIdentifier(...))`."""
    from bedrock_agentcore.services.identity import IdentityClient, UserIdIdentifier

    client = IdentityClient(REGION)  # made once, as a web app would at start-up

    def complete(session_id: str, user: str) -> None:
        client.complete_resource_token_auth(session_id, UserIdIdentifier(user_id=user))

    with helpers.ReturnApp(complete) as web_app:
        yield web_app


@pytest.fixture(scope="session")
def user_token(oidc, keygate):
    """user_token(login) -> a real user JWT (aud "agents") from the OpenID provider; cached."""
    cache: dict[str, str] = {}

    def get(login: str) -> str:
        if login not in cache:
            cache[login] = helpers.user_jwt(oidc.issuer, keygate.url, login)
        return cache[login]

    return get


@pytest.fixture
def unique():
    """unique(prefix) -> a fresh resource name (valid for workloads and providers)."""
    return lambda prefix: f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture
def wat(dp):
    """wat(workload, user_id=None) -> a workload access token from the API."""

    def get(workload: str = CONFIG_WORKLOAD, user_id: str | None = None) -> str:
        if user_id is None:
            return dp.get_workload_access_token(workloadName=workload)["workloadAccessToken"]
        return dp.get_workload_access_token_for_user_id(workloadName=workload, userId=user_id)[
            "workloadAccessToken"
        ]

    return get
