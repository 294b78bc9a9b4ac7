"""AWS's `bedrock-agentcore` SDK used exactly as agent authors write it, against keygate:
`@requires_api_key` and `@requires_access_token` (M2M and USER_FEDERATION). Outside AWS's
runtime the decorators create a workload identity, keep it with a random user id in
`.agentcore.json` in the working directory (each test has its own), and call
GetWorkloadAccessTokenForUserId themselves."""

import asyncio
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from helpers import REGION, RETURN_URL, WEATHER_KEY, client_error, jwt_claims, query_of


@pytest.fixture
def sdk(keygate, monkeypatch):
    """The SDK, imported only now (it reads its endpoints from the environment the `keygate`
    fixture set). Its own poller checks for the token every 5 s; tests poll every 0.1 s, with
    the SDK's own polling request (the first request again, plus `sessionUri`)."""
    from bedrock_agentcore.identity import auth
    from bedrock_agentcore.services import identity

    monkeypatch.setattr(identity, "DEFAULT_POLLING_INTERVAL_SECONDS", 0.1)
    monkeypatch.setattr(identity, "DEFAULT_POLLING_TIMEOUT_SECONDS", 15)
    return SimpleNamespace(
        requires_api_key=auth.requires_api_key,
        requires_access_token=auth.requires_access_token,
        IdentityClient=identity.IdentityClient,
        UserIdIdentifier=identity.UserIdIdentifier,
    )


def local_identity() -> dict:
    return json.loads(Path(".agentcore.json").read_text())


def set_up_workload(sdk, cp, return_url: str = RETURN_URL) -> dict:
    """What a user does before 3LO works locally: a first decorated call creates the workload
    identity (and `.agentcore.json`); then the app's return URL is registered for it."""

    @sdk.requires_api_key(provider_name="weather")
    def first_call(*, api_key):
        return api_key

    assert first_call() == WEATHER_KEY
    identity = local_identity()
    cp.update_workload_identity(
        name=identity["workload_identity_name"], allowedResourceOauth2ReturnUrls=[return_url]
    )
    return identity


def consenting_user(sdk, browser, user_id: str, finals: list):
    """An `on_auth_url` handler: the user consents in a (headless) browser, the app's return URL
    receives the session, and the app confirms the session for its signed-in user."""

    def on_auth_url(url: str) -> None:
        final = browser.drive(url, login=user_id)
        finals.append(final)
        assert final.startswith(RETURN_URL + "?"), final
        sdk.IdentityClient(REGION).complete_resource_token_auth(
            query_of(final)["session_id"], sdk.UserIdIdentifier(user_id=user_id)
        )

    return on_auth_url


def test_requires_api_key(sdk, cp):
    @sdk.requires_api_key(provider_name="weather")
    async def forecast(city: str, *, api_key: str) -> str:
        return f"{city}:{api_key}"

    assert asyncio.run(forecast("Paris")) == f"Paris:{WEATHER_KEY}"

    identity = local_identity()
    assert re.fullmatch(r"workload-[0-9a-f]{8}", identity["workload_identity_name"]), identity
    assert re.fullmatch(r"[0-9a-f]{8}", identity["user_id"]), identity
    created = cp.get_workload_identity(name=identity["workload_identity_name"])
    assert created["allowedResourceOauth2ReturnUrls"] == []

    # The second call reuses the identity it remembered.
    assert asyncio.run(forecast("Oslo")) == f"Oslo:{WEATHER_KEY}"
    assert local_identity() == identity


def test_requires_api_key_on_a_sync_function(sdk):
    @sdk.requires_api_key(provider_name="weather", into="key")
    def forecast(*, key: str) -> str:
        return key

    assert forecast() == WEATHER_KEY


def test_requires_access_token_m2m(sdk, oidc):
    @sdk.requires_access_token(provider_name="m2m", scopes=["tools"], auth_flow="M2M")
    async def call_tool(*, access_token: str) -> str:
        return access_token

    claims = jwt_claims(asyncio.run(call_tool()))
    assert claims["iss"] == oidc.issuer
    assert claims["client_id"] == "agent-m2m"
    assert "tools" in claims["scope"].split()


def test_requires_access_token_user_federation(sdk, cp, oidc, browser):
    identity = set_up_workload(sdk, cp)
    user_id = identity["user_id"]
    finals: list[str] = []

    @sdk.requires_access_token(
        provider_name="idp",
        scopes=["openid"],
        auth_flow="USER_FEDERATION",
        on_auth_url=consenting_user(sdk, browser, user_id, finals),
        callback_url=RETURN_URL,
    )
    async def read_profile(*, access_token: str) -> str:
        return access_token

    token = asyncio.run(read_profile())
    assert len(finals) == 1
    claims = jwt_claims(token)
    assert (claims["iss"], claims["sub"]) == (oidc.issuer, user_id)

    # Vaulted: no new authorization URL, the same token.
    assert asyncio.run(read_profile()) == token
    assert len(finals) == 1


def test_user_federation_completed_by_the_app_at_the_return_url(sdk, cp, oidc, browser, app):
    # The agent's web app serves the return URL; on_auth_url only plays the user's browser.
    identity = set_up_workload(sdk, cp, return_url=app.url)
    user_id = identity["user_id"]
    app.sign_in(browser.session, user_id)
    auth_urls: list[str] = []

    def on_auth_url(url: str) -> None:
        auth_urls.append(url)
        browser.drive(url, login=user_id, follow_to_app=True)

    @sdk.requires_access_token(
        provider_name="idp",
        scopes=["openid"],
        auth_flow="USER_FEDERATION",
        on_auth_url=on_auth_url,
        callback_url=app.url,
    )
    async def read_profile(*, access_token: str) -> str:
        return access_token

    token = asyncio.run(read_profile())
    assert len(auth_urls) == 1
    landed = browser.app_response
    assert (landed.status_code, landed.text) == (200, "signed in"), app.returns
    assert len(app.returns) == 1, app.returns
    visit = app.returns[0]
    assert visit["user"] == user_id and visit["error"] is None, visit
    # The session the app confirmed is the one the SDK was handed and then polled.
    assert visit["query"]["session_id"] == query_of(auth_urls[0])["request_uri"], visit
    claims = jwt_claims(token)
    assert (claims["iss"], claims["sub"]) == (oidc.issuer, user_id)

    # Vaulted: no new authorization URL, no new visit to the app, the same token.
    assert asyncio.run(read_profile()) == token
    assert len(auth_urls) == 1 and len(app.returns) == 1


def test_force_authentication_asks_again(sdk, cp, browser):
    identity = set_up_workload(sdk, cp)
    finals: list[str] = []
    options = dict(
        provider_name="idp",
        scopes=["openid"],
        auth_flow="USER_FEDERATION",
        on_auth_url=consenting_user(sdk, browser, identity["user_id"], finals),
        callback_url=RETURN_URL,
    )

    @sdk.requires_access_token(**options)
    async def normal(*, access_token: str) -> str:
        return access_token

    @sdk.requires_access_token(**options, force_authentication=True)
    async def forced(*, access_token: str) -> str:
        return access_token

    first = asyncio.run(normal())
    assert len(finals) == 1
    second = asyncio.run(forced())
    assert len(finals) == 2, "forceAuthentication must give a new authorization URL"
    assert query_of(finals[0])["session_id"] != query_of(finals[1])["session_id"]
    assert jwt_claims(second)["jti"] != jwt_claims(first)["jti"]
    assert jwt_claims(second)["sub"] == identity["user_id"]


def test_custom_state_comes_back_on_the_return_url(sdk, cp, browser):
    identity = set_up_workload(sdk, cp)
    finals: list[str] = []

    @sdk.requires_access_token(
        provider_name="idp",
        scopes=["openid"],
        auth_flow="USER_FEDERATION",
        on_auth_url=consenting_user(sdk, browser, identity["user_id"], finals),
        callback_url=RETURN_URL,
        custom_state="csrf-7f3a9 & more",
    )
    async def read_profile(*, access_token: str) -> str:
        return access_token

    assert asyncio.run(read_profile())
    query = query_of(finals[0])
    assert query["state"] == "csrf-7f3a9 & more"
    assert query["session_id"].startswith("urn:ietf:params:oauth:request_uri:")


def test_unregistered_return_url_is_refused(sdk):
    # The decorator's fresh workload identity has no allowed return URLs yet.
    called: list[str] = []

    @sdk.requires_access_token(
        provider_name="idp",
        scopes=["openid"],
        auth_flow="USER_FEDERATION",
        on_auth_url=called.append,
        callback_url=RETURN_URL,
    )
    async def read_profile(*, access_token: str) -> str:
        return access_token

    with pytest.raises(ClientError) as caught:
        asyncio.run(read_profile())
    code, status, message = client_error(caught)
    assert (code, status) == ("ValidationException", 400)
    assert "resourceOauth2ReturnUrl" in message
    assert called == []
