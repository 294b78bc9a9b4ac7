"""The data plane (`bedrock-agentcore`) through boto3: workload access tokens for a workload, a
user id and a real user JWT; API keys and M2M tokens fetched with a workload access token."""

import json
import time

import pytest
from botocore.exceptions import ClientError

from helpers import WEATHER_KEY, b64url, client_error, jwt_claims, jwt_parts


def raises(code: str, http_status: int, call, **kwargs) -> str:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    got_code, got_status, message = client_error(caught)
    assert (got_code, got_status) == (code, http_status), caught.value.response
    return message


def forged_jwt(claims: dict, kid: str = "nope") -> str:
    """A JWT-shaped token with a signature nobody made."""
    header = {"alg": "RS256", "typ": "JWT", "kid": kid}
    return ".".join(
        [
            b64url(json.dumps(header).encode()),
            b64url(json.dumps(claims).encode()),
            b64url(b"x" * 256),
        ]
    )


# --- Workload access tokens ---------------------------------------------------------------------


def test_workload_access_token(dp, keygate):
    token = dp.get_workload_access_token(workloadName="ConfigAgent")["workloadAccessToken"]
    header, claims = jwt_parts(token)
    assert header["alg"] not in ("none", "HS256", "HS384", "HS512"), header
    assert claims["iss"] == keygate.url
    assert claims["aud"] == "keygate"
    assert claims["sub"] == "ConfigAgent"
    assert "uid" not in claims and "uiss" not in claims
    assert 3590 <= claims["exp"] - claims["iat"] <= 3610
    assert abs(claims["iat"] - time.time()) < 120


def test_workload_access_token_for_user_id(dp):
    token = dp.get_workload_access_token_for_user_id(workloadName="ConfigAgent", userId="user-123")[
        "workloadAccessToken"
    ]
    claims = jwt_claims(token)
    assert claims["sub"] == "ConfigAgent"
    assert claims["uid"] == "user-123"
    assert "uiss" not in claims


def test_workload_access_token_for_jwt(dp, oidc, user_token):
    token = dp.get_workload_access_token_for_jwt(
        workloadName="ConfigAgent", userToken=user_token("alice")
    )["workloadAccessToken"]
    claims = jwt_claims(token)
    assert claims["sub"] == "ConfigAgent"
    assert claims["uid"] == "alice"
    assert claims["uiss"] == oidc.issuer


def test_api_created_workload_gets_tokens_for_jwt_users(cp, dp, oidc, user_token, unique):
    # Validated by api.default_authorizer ("corp").
    name = unique("agent")
    cp.create_workload_identity(name=name)
    try:
        token = dp.get_workload_access_token_for_jwt(
            workloadName=name, userToken=user_token("bob")
        )["workloadAccessToken"]
        claims = jwt_claims(token)
        assert (claims["sub"], claims["uid"], claims["uiss"]) == (name, "bob", oidc.issuer)
    finally:
        cp.delete_workload_identity(name=name)


@pytest.mark.parametrize("kind", ["garbage", "expired", "foreign-issuer"])
def test_invalid_user_jwt_is_unauthorized(dp, oidc, kind):
    now = int(time.time())
    token = {
        "garbage": "aaaa.bbbb.cccc",
        "expired": forged_jwt(
            {
                "iss": oidc.issuer,
                "sub": "mallory",
                "aud": "agents",
                "iat": now - 7200,
                "exp": now - 3600,
            }
        ),
        "foreign-issuer": forged_jwt(
            {"iss": "http://127.0.0.1:1", "sub": "mallory", "aud": "agents", "exp": now + 600}
        ),
    }[kind]
    raises(
        "UnauthorizedException",
        401,
        dp.get_workload_access_token_for_jwt,
        workloadName="ConfigAgent",
        userToken=token,
    )


def test_user_jwt_with_a_forged_signature_is_unauthorized(dp, user_token):
    header = user_token("alice").split(".")[0]
    claims = jwt_claims(user_token("alice"))
    claims["sub"] = "mallory"
    tampered = f"{header}.{b64url(json.dumps(claims).encode())}.{b64url(b'y' * 256)}"
    raises(
        "UnauthorizedException",
        401,
        dp.get_workload_access_token_for_jwt,
        workloadName="ConfigAgent",
        userToken=tampered,
    )


def test_unknown_workload_is_not_found(dp, user_token):
    raises(
        "ResourceNotFoundException", 404, dp.get_workload_access_token, workloadName="NoSuchAgent"
    )
    raises(
        "ResourceNotFoundException",
        404,
        dp.get_workload_access_token_for_user_id,
        workloadName="NoSuchAgent",
        userId="user-123",
    )
    raises(
        "ResourceNotFoundException",
        404,
        dp.get_workload_access_token_for_jwt,
        workloadName="NoSuchAgent",
        userToken=user_token("alice"),
    )


# --- API keys -----------------------------------------------------------------------------------


def test_get_resource_api_key(dp, wat):
    response = dp.get_resource_api_key(
        workloadIdentityToken=wat(user_id="user-123"), resourceCredentialProviderName="weather"
    )
    assert response["apiKey"] == WEATHER_KEY


@pytest.mark.parametrize("kind", ["garbage", "user-jwt", "forged"])
def test_api_key_needs_a_valid_workload_access_token(dp, user_token, wat, kind):
    token = {
        "garbage": "not-a-token",
        # A valid JWT, but not one keygate issued.
        "user-jwt": user_token("alice"),
        # keygate's own claims with someone else's signature.
        "forged": forged_jwt(jwt_claims(wat())),
    }[kind]
    message = raises(
        "UnauthorizedException",
        401,
        dp.get_resource_api_key,
        workloadIdentityToken=token,
        resourceCredentialProviderName="weather",
    )
    assert WEATHER_KEY not in message


def test_api_key_of_unknown_provider_is_not_found(dp, wat):
    raises(
        "ResourceNotFoundException",
        404,
        dp.get_resource_api_key,
        workloadIdentityToken=wat(),
        resourceCredentialProviderName="no-such-provider",
    )


# --- OAuth2 M2M ---------------------------------------------------------------------------------


def test_m2m_token_from_the_provider(dp, oidc, wat):
    response = dp.get_resource_oauth2_token(
        workloadIdentityToken=wat(),
        resourceCredentialProviderName="m2m",
        scopes=["tools"],
        oauth2Flow="M2M",
    )
    assert "authorizationUrl" not in response
    claims = jwt_claims(response["accessToken"])
    assert claims["iss"] == oidc.issuer
    assert claims["client_id"] == "agent-m2m"
    assert claims["aud"] == "agents"
    assert "tools" in claims["scope"].split()


def test_m2m_with_an_api_created_provider(cp, dp, oidc, wat, unique):
    name = unique("m2m")
    cp.create_oauth2_credential_provider(
        name=name,
        credentialProviderVendor="CustomOauth2",
        oauth2ProviderConfigInput={
            "customOauth2ProviderConfig": {
                "oauthDiscovery": {"discoveryUrl": oidc.discovery_url},
                "clientId": "agent-m2m-post",
                "clientSecret": "m2m-post-secret",
                "clientAuthenticationMethod": "CLIENT_SECRET_POST",
            }
        },
    )
    try:
        response = dp.get_resource_oauth2_token(
            workloadIdentityToken=wat(),
            resourceCredentialProviderName=name,
            scopes=["other"],
            oauth2Flow="M2M",
        )
        claims = jwt_claims(response["accessToken"])
        assert (claims["iss"], claims["client_id"]) == (oidc.issuer, "agent-m2m-post")
        assert "other" in claims["scope"].split()
    finally:
        cp.delete_oauth2_credential_provider(name=name)


def test_oauth2_token_needs_a_valid_workload_access_token(dp):
    raises(
        "UnauthorizedException",
        401,
        dp.get_resource_oauth2_token,
        workloadIdentityToken="not-a-token",
        resourceCredentialProviderName="m2m",
        scopes=["tools"],
        oauth2Flow="M2M",
    )


def test_oauth2_token_of_unknown_provider_is_not_found(dp, wat):
    raises(
        "ResourceNotFoundException",
        404,
        dp.get_resource_oauth2_token,
        workloadIdentityToken=wat(),
        resourceCredentialProviderName="no-such-provider",
        scopes=["tools"],
        oauth2Flow="M2M",
    )


def test_m2m_resources_reach_the_provider_and_make_their_own_token(dp, wat):
    """`resources` become RFC 8707 `resource` parameters: the provider issues a token for that
    resource (its audience), cached apart from the plain token."""
    token = wat()

    def m2m(**extra):
        return dp.get_resource_oauth2_token(
            workloadIdentityToken=token,
            resourceCredentialProviderName="m2m",
            scopes=["tools"],
            oauth2Flow="M2M",
            **extra,
        )["accessToken"]

    plain = m2m()
    scoped = m2m(resources=["urn:test:reports"])
    assert jwt_claims(plain)["aud"] == "agents"
    assert jwt_claims(scoped)["aud"] == "urn:test:reports"
    assert m2m(resources=["urn:test:reports"]) == scoped, "the resource's token is cached"
    assert m2m() == plain


def test_resources_are_checked_and_kept_to_m2m(dp, wat):
    token = wat(user_id="resource-user")
    message = raises(
        "ValidationException",
        400,
        dp.get_resource_oauth2_token,
        workloadIdentityToken=token,
        resourceCredentialProviderName="m2m",
        scopes=[],
        oauth2Flow="M2M",
        resources=["not a uri"],
    )
    assert "resources" in message, message
    message = raises(
        "ValidationException",
        400,
        dp.get_resource_oauth2_token,
        workloadIdentityToken=token,
        resourceCredentialProviderName="idp",
        scopes=["openid"],
        oauth2Flow="USER_FEDERATION",
        audiences=["https://api.example.com"],
    )
    assert "audiences" in message and "M2M" in message, message
