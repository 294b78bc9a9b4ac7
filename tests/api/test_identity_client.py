"""AWS's high-level `IdentityClient` (bedrock_agentcore.services.identity) used directly, as an
agent author would outside the decorators: workload identities, credential providers created
from request dicts, workload access tokens for a user id or a user's JWT, and tokens and keys
fetched with them."""

import asyncio
import json
import re
import secrets

import pytest
from botocore.exceptions import ClientError

from helpers import M2M_SECRET, REGION, client_error, jwt_claims

WORKLOAD_ARN = re.compile(
    rf"arn:aws:bedrock-agentcore:{REGION}:\d{{12}}:workload-identity-directory/default/"
    r"workload-identity/(?P<name>.+)"
)


@pytest.fixture
def identity(keygate, monkeypatch):
    """`IdentityClient` and the SDK's identity module, imported only now (after the `keygate`
    fixture set the endpoints); its token poller checks every 0.1 s for at most 15 s."""
    from bedrock_agentcore.services import identity as module

    monkeypatch.setattr(module, "DEFAULT_POLLING_INTERVAL_SECONDS", 0.1)
    monkeypatch.setattr(module, "DEFAULT_POLLING_TIMEOUT_SECONDS", 15)
    return module


@pytest.fixture
def client(identity):
    return identity.IdentityClient(REGION)


@pytest.fixture
def cleanup(cp):
    """cleanup(kind, name): deleted through boto3 at the end (IdentityClient has no delete for
    workload identities); already gone is fine."""
    created: list[tuple[str, str]] = []
    yield lambda kind, name: created.append((kind, name))
    delete = {
        "workload": cp.delete_workload_identity,
        "api_key": cp.delete_api_key_credential_provider,
        "oauth2": cp.delete_oauth2_credential_provider,
    }
    for kind, name in reversed(created):
        try:
            delete[kind](name=name)
        except ClientError:
            pass


def test_create_and_get_workload_identity(client, cleanup, unique):
    name = unique("client")
    cleanup("workload", name)
    created = client.create_workload_identity(
        name, allowed_resource_oauth_2_return_urls=["https://a.example.com/cb"]
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["name"] == name
    assert WORKLOAD_ARN.fullmatch(created["workloadIdentityArn"])["name"] == name
    got = client.get_workload_identity(name)
    assert got["name"] == name
    assert got["allowedResourceOauth2ReturnUrls"] == ["https://a.example.com/cb"]


def test_create_workload_identity_without_a_name(client, cp, cleanup):
    # The client names it `workload-<8 hex>` itself, with no return URLs.
    created = client.create_workload_identity()
    name = created["name"]
    cleanup("workload", name)
    assert re.fullmatch(r"workload-[0-9a-f]{8}", name), name
    assert created["allowedResourceOauth2ReturnUrls"] == []
    assert cp.get_workload_identity(name=name)["name"] == name


def test_update_workload_identity_return_urls(client, cleanup, unique):
    name = unique("client")
    cleanup("workload", name)
    client.create_workload_identity(name)
    urls = ["https://b.example.com/cb", "http://localhost:8080/oauth/callback"]
    updated = client.update_workload_identity(name, allowed_resource_oauth_2_return_urls=urls)
    assert updated["allowedResourceOauth2ReturnUrls"] == urls
    assert client.get_workload_identity(name)["allowedResourceOauth2ReturnUrls"] == urls
    client.update_workload_identity(name, allowed_resource_oauth_2_return_urls=[])
    assert client.get_workload_identity(name)["allowedResourceOauth2ReturnUrls"] == []


def test_get_unknown_workload_identity_is_not_found(client):
    with pytest.raises(ClientError) as caught:
        client.get_workload_identity("NoSuchAgent")
    assert client_error(caught)[:2] == ("ResourceNotFoundException", 404)


def test_workload_access_token_for_the_workload(client):
    token = client.get_workload_access_token("ConfigAgent")["workloadAccessToken"]
    claims = jwt_claims(token)
    assert claims["sub"] == "ConfigAgent"
    assert "uid" not in claims


def test_workload_access_token_for_a_user_id(client):
    token = client.get_workload_access_token("ConfigAgent", user_id="client-user")[
        "workloadAccessToken"
    ]
    claims = jwt_claims(token)
    assert (claims["sub"], claims["uid"]) == ("ConfigAgent", "client-user")
    assert "uiss" not in claims


def test_workload_access_token_for_a_users_jwt(client, oidc, user_token):
    token = client.get_workload_access_token("ConfigAgent", user_token=user_token("carol"))[
        "workloadAccessToken"
    ]
    claims = jwt_claims(token)
    assert (claims["sub"], claims["uid"], claims["uiss"]) == ("ConfigAgent", "carol", oidc.issuer)


def test_workload_access_token_with_both_uses_the_jwt(client, oidc, user_token):
    # The client prefers the JWT when given both: keygate sees a GetWorkloadAccessTokenForJWT.
    token = client.get_workload_access_token(
        "ConfigAgent", user_token=user_token("carol"), user_id="someone-else"
    )["workloadAccessToken"]
    claims = jwt_claims(token)
    assert (claims["uid"], claims["uiss"]) == ("carol", oidc.issuer)


def test_workload_access_token_for_a_forged_jwt_is_unauthorized(client, user_token):
    header, payload, _ = user_token("carol").split(".")
    with pytest.raises(ClientError) as caught:
        client.get_workload_access_token("ConfigAgent", user_token=f"{header}.{payload}.AAAA")
    assert client_error(caught)[:2] == ("UnauthorizedException", 401)


def test_api_key_provider_from_a_request_dict(client, cleanup, unique):
    name = unique("client-key")
    key = "client-key-" + secrets.token_hex(16)
    cleanup("api_key", name)
    created = client.create_api_key_credential_provider({"name": name, "apiKey": key})
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["name"] == name
    assert key not in json.dumps(created, default=str)
    # The pass-through Get takes snake_case too, and never shows the key.
    got = client.get_api_key_credential_provider(name=name)
    assert got["name"] == name and got["credentialProviderArn"] == created["credentialProviderArn"]
    assert key not in json.dumps(got, default=str)

    wat = client.get_workload_access_token("ConfigAgent", user_id="client-user")[
        "workloadAccessToken"
    ]
    assert asyncio.run(client.get_api_key(provider_name=name, agent_identity_token=wat)) == key


def test_oauth2_provider_from_a_request_dict(client, oidc, cleanup, unique):
    name = unique("client-m2m")
    cleanup("oauth2", name)
    created = client.create_oauth2_credential_provider(
        {
            "name": name,
            "credentialProviderVendor": "CustomOauth2",
            "oauth2ProviderConfigInput": {
                "customOauth2ProviderConfig": {
                    "oauthDiscovery": {"discoveryUrl": oidc.discovery_url},
                    "clientId": "agent-m2m",
                    "clientSecret": M2M_SECRET,
                }
            },
        }
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["name"] == name
    got = client.get_oauth2_credential_provider(name=name)
    config = got["oauth2ProviderConfigOutput"]["customOauth2ProviderConfig"]
    assert config["clientId"] == "agent-m2m"
    assert M2M_SECRET not in json.dumps(got, default=str)

    wat = client.get_workload_access_token("ConfigAgent")["workloadAccessToken"]
    token = asyncio.run(
        client.get_token(
            provider_name=name, scopes=["other"], agent_identity_token=wat, auth_flow="M2M"
        )
    )
    claims = jwt_claims(token)
    assert (claims["iss"], claims["client_id"]) == (oidc.issuer, "agent-m2m")
    assert "other" in claims["scope"].split()

    assert client.delete_oauth2_credential_provider(name=name)["ResponseMetadata"][
        "HTTPStatusCode"
    ] == 204
    with pytest.raises(ClientError) as caught:
        client.get_oauth2_credential_provider(name=name)
    assert client_error(caught)[:2] == ("ResourceNotFoundException", 404)


def test_user_federation_with_get_token_and_the_app(client, oidc, browser, app, cleanup, unique):
    # 3LO by hand: a workload allowing the app's return URL, a token for the app's user, the
    # authorization URL driven in the user's browser, the app completing the session.
    name = unique("client-3lo")
    user = "client-" + secrets.token_hex(4)
    cleanup("workload", name)
    client.create_workload_identity(name, allowed_resource_oauth_2_return_urls=[app.url])
    wat = client.get_workload_access_token(name, user_id=user)["workloadAccessToken"]
    app.sign_in(browser.session, user)
    auth_urls: list[str] = []

    def on_auth_url(url: str) -> None:
        auth_urls.append(url)
        browser.drive(url, login=user, follow_to_app=True)

    def get_token():
        return asyncio.run(
            client.get_token(
                provider_name="idp",
                scopes=["openid"],
                agent_identity_token=wat,
                auth_flow="USER_FEDERATION",
                on_auth_url=on_auth_url,
                callback_url=app.url,
            )
        )

    token = get_token()
    assert len(auth_urls) == 1
    assert browser.app_response.status_code == 200, app.returns
    assert [visit["user"] for visit in app.returns] == [user]
    claims = jwt_claims(token)
    assert (claims["iss"], claims["sub"]) == (oidc.issuer, user)
    assert get_token() == token
    assert len(auth_urls) == 1
