"""The control plane (`bedrock-agentcore-control`) through boto3: workload identities, API-key and
OAuth2 credential providers, the token vault. Shapes, ARNs, status codes and modelled errors."""

import datetime
import json
import secrets
import uuid

import pytest
import requests
from botocore.exceptions import ClientError

from helpers import (
    ACCOUNT_ID,
    HTTP_TIMEOUT,
    M2M_POST_SECRET,
    REGION,
    assert_aws_error,
    client_error,
    jwt_claims,
)

ARN = f"arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT_ID}"
WORKLOAD_ARN = f"{ARN}:workload-identity-directory/default/workload-identity/"
API_KEY_ARN = f"{ARN}:token-vault/default/apikeycredentialprovider/"
OAUTH2_ARN = f"{ARN}:token-vault/default/oauth2credentialprovider/"


def status(response) -> int:
    return response["ResponseMetadata"]["HTTPStatusCode"]


def list_all(call, key: str) -> list[dict]:
    """Every item of a paged List* operation, one item per page."""
    items, token = [], None
    for _ in range(1000):
        page = call(maxResults=1, **({"nextToken": token} if token else {}))
        assert len(page[key]) <= 1, page
        items += page[key]
        token = page.get("nextToken")
        if not token:
            return items
    raise AssertionError("paging never ended")


def raises(code: str, http_status: int, call, *args, **kwargs) -> str:
    """Calls, expects a modelled error with that code and status; returns its message."""
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    got_code, got_status, message = client_error(caught)
    assert (got_code, got_status) == (code, http_status), caught.value.response
    return message


def recent(moment: datetime.datetime) -> bool:
    now = datetime.datetime.now(datetime.timezone.utc)
    return abs((now - moment).total_seconds()) < 120


# --- Workload identities ------------------------------------------------------------------------


@pytest.fixture
def workload(cp, unique):
    name = unique("agent")
    created = cp.create_workload_identity(
        name=name, allowedResourceOauth2ReturnUrls=["https://a.example.com/cb"]
    )
    yield name, created
    try:
        cp.delete_workload_identity(name=name)
    except ClientError:
        pass


def test_create_workload_identity(workload):
    name, created = workload
    assert status(created) == 201
    assert created["name"] == name
    assert created["workloadIdentityArn"] == WORKLOAD_ARN + name
    assert created["allowedResourceOauth2ReturnUrls"] == ["https://a.example.com/cb"]


def test_get_workload_identity(cp, workload):
    name, _ = workload
    got = cp.get_workload_identity(name=name)
    assert status(got) == 200
    assert got["name"] == name
    assert got["workloadIdentityArn"] == WORKLOAD_ARN + name
    assert got["allowedResourceOauth2ReturnUrls"] == ["https://a.example.com/cb"]
    assert isinstance(got["createdTime"], datetime.datetime) and recent(got["createdTime"])
    assert isinstance(got["lastUpdatedTime"], datetime.datetime)
    assert got["lastUpdatedTime"] >= got["createdTime"]


def test_update_workload_identity(cp, workload):
    name, _ = workload
    before = cp.get_workload_identity(name=name)
    urls = ["https://b.example.com/cb", "http://localhost:5173/oauth/callback"]
    updated = cp.update_workload_identity(name=name, allowedResourceOauth2ReturnUrls=urls)
    assert status(updated) == 200
    assert updated["name"] == name
    assert updated["workloadIdentityArn"] == WORKLOAD_ARN + name
    assert updated["allowedResourceOauth2ReturnUrls"] == urls
    assert updated["createdTime"] == before["createdTime"]
    assert updated["lastUpdatedTime"] >= updated["createdTime"]
    assert cp.get_workload_identity(name=name)["allowedResourceOauth2ReturnUrls"] == urls


def test_delete_workload_identity(cp, workload):
    name, _ = workload
    assert status(cp.delete_workload_identity(name=name)) == 204
    message = raises("ResourceNotFoundException", 404, cp.get_workload_identity, name=name)
    assert name in message
    raises("ResourceNotFoundException", 404, cp.delete_workload_identity, name=name)
    raises(
        "ResourceNotFoundException",
        404,
        cp.update_workload_identity,
        name=name,
        allowedResourceOauth2ReturnUrls=[],
    )


def test_list_pages_through_every_workload_identity(cp, unique):
    names = {unique("paged") for _ in range(3)}
    for name in names:
        cp.create_workload_identity(name=name)
    try:
        listed = list_all(cp.list_workload_identities, "workloadIdentities")
        seen = [w["name"] for w in listed]
        assert len(seen) == len(set(seen)), f"an identity listed twice: {seen}"
        assert names | {"ConfigAgent"} <= set(seen)
        for w in listed:
            assert w["workloadIdentityArn"] == WORKLOAD_ARN + w["name"]
    finally:
        for name in names:
            cp.delete_workload_identity(name=name)


def test_duplicate_workload_identity_conflicts(cp, workload):
    name, _ = workload
    raises("ConflictException", 409, cp.create_workload_identity, name=name)


def test_config_defined_workload_identity_is_read_only(cp):
    got = cp.get_workload_identity(name="ConfigAgent")
    assert got["allowedResourceOauth2ReturnUrls"] == ["https://myapp.example.com/cb"]
    assert got["workloadIdentityArn"] == WORKLOAD_ARN + "ConfigAgent"
    raises("ConflictException", 409, cp.create_workload_identity, name="ConfigAgent")
    raises(
        "ConflictException",
        409,
        cp.update_workload_identity,
        name="ConfigAgent",
        allowedResourceOauth2ReturnUrls=["https://evil.example.com/cb"],
    )
    raises("ConflictException", 409, cp.delete_workload_identity, name="ConfigAgent")
    assert cp.get_workload_identity(name="ConfigAgent")["allowedResourceOauth2ReturnUrls"] == [
        "https://myapp.example.com/cb"
    ]


@pytest.mark.parametrize("name", ["bad name!", "x" * 256, "slash/name"])
def test_invalid_workload_name_is_refused(cp, name):
    message = raises("ValidationException", 400, cp.create_workload_identity, name=name)
    assert "name" in message


def test_too_short_workload_name_is_refused(raw):
    # botocore refuses a 1-character name itself; a raw request reaches keygate.
    response = raw("/identities/CreateWorkloadIdentity", {"name": "a"})
    assert "name" in assert_aws_error(response, 400, "ValidationException")


def test_invalid_return_url_is_refused(cp, unique):
    message = raises(
        "ValidationException",
        400,
        cp.create_workload_identity,
        name=unique("agent"),
        allowedResourceOauth2ReturnUrls=["not a url"],
    )
    assert "allowedResourceOauth2ReturnUrls" in message


def test_max_results_out_of_range_is_refused(cp, raw):
    # botocore checks only the minimum itself: 0 goes raw, 21 through boto3.
    response = raw("/identities/ListWorkloadIdentities", {"maxResults": 0})
    assert "maxResults" in assert_aws_error(response, 400, "ValidationException")
    message = raises("ValidationException", 400, cp.list_workload_identities, maxResults=21)
    assert "maxResults" in message


def test_workload_identity_quota(start_keygate):
    # max_workload_identities counts the workload identities created through the API; the
    # config's ConfigAgent is the operator's and does not count.
    small = start_keygate("quota", max_workloads=2)
    cp = small.client("bedrock-agentcore-control")
    assert status(cp.create_workload_identity(name="quota-one")) == 201
    assert status(cp.create_workload_identity(name="quota-two")) == 201
    message = raises(
        "ServiceQuotaExceededException", 402, cp.create_workload_identity, name="quota-three"
    )
    assert "2" in message
    raises("ResourceNotFoundException", 404, cp.get_workload_identity, name="quota-three")
    cp.delete_workload_identity(name="quota-one")
    assert status(cp.create_workload_identity(name="quota-three")) == 201


# --- API-key credential providers ---------------------------------------------------------------


@pytest.fixture
def api_key_provider(cp, unique):
    name = unique("apikey")
    key = "key-" + secrets.token_hex(16)
    created = cp.create_api_key_credential_provider(name=name, apiKey=key)
    yield name, key, created
    try:
        cp.delete_api_key_credential_provider(name=name)
    except ClientError:
        pass


def test_create_api_key_provider(api_key_provider):
    name, key, created = api_key_provider
    assert status(created) == 201
    assert created["name"] == name
    assert created["credentialProviderArn"] == API_KEY_ARN + name
    assert created["apiKeySecretArn"]["secretArn"]
    assert key not in json.dumps(created, default=str)


def test_get_api_key_provider_never_shows_the_key(cp, raw, api_key_provider):
    name, key, _ = api_key_provider
    got = cp.get_api_key_credential_provider(name=name)
    assert got["name"] == name
    assert got["credentialProviderArn"] == API_KEY_ARN + name
    assert got["apiKeySecretArn"]["secretArn"]
    assert isinstance(got["createdTime"], datetime.datetime) and recent(got["createdTime"])
    assert got["lastUpdatedTime"] >= got["createdTime"]
    response = raw("/identities/GetApiKeyCredentialProvider", {"name": name})
    assert response.status_code == 200, response.text
    assert key not in response.text


def test_update_api_key_provider_changes_the_key(cp, dp, wat, api_key_provider):
    name, key, _ = api_key_provider
    token = wat()
    assert (
        dp.get_resource_api_key(workloadIdentityToken=token, resourceCredentialProviderName=name)[
            "apiKey"
        ]
        == key
    )
    new_key = "key-" + secrets.token_hex(16)
    updated = cp.update_api_key_credential_provider(name=name, apiKey=new_key)
    assert status(updated) == 200
    assert updated["credentialProviderArn"] == API_KEY_ARN + name
    assert new_key not in json.dumps(updated, default=str)
    assert updated["lastUpdatedTime"] >= updated["createdTime"]
    assert (
        dp.get_resource_api_key(workloadIdentityToken=token, resourceCredentialProviderName=name)[
            "apiKey"
        ]
        == new_key
    )


def test_list_api_key_providers(cp, api_key_provider):
    name, _, _ = api_key_provider
    listed = {
        p["name"]: p for p in list_all(cp.list_api_key_credential_providers, "credentialProviders")
    }
    assert name in listed
    assert listed[name]["credentialProviderArn"] == API_KEY_ARN + name
    assert isinstance(listed[name]["createdTime"], datetime.datetime)


def test_delete_api_key_provider(cp, dp, wat, api_key_provider):
    name, _, _ = api_key_provider
    assert status(cp.delete_api_key_credential_provider(name=name)) == 204
    raises("ResourceNotFoundException", 404, cp.get_api_key_credential_provider, name=name)
    raises(
        "ResourceNotFoundException",
        404,
        dp.get_resource_api_key,
        workloadIdentityToken=wat(),
        resourceCredentialProviderName=name,
    )


def test_api_key_provider_conflicts(cp, api_key_provider):
    name, _, _ = api_key_provider
    raises("ConflictException", 409, cp.create_api_key_credential_provider, name=name, apiKey="x")
    # "weather" is defined in the config file: read-only through the API.
    raises(
        "ConflictException", 409, cp.create_api_key_credential_provider, name="weather", apiKey="x"
    )
    raises(
        "ConflictException", 409, cp.update_api_key_credential_provider, name="weather", apiKey="x"
    )
    raises("ConflictException", 409, cp.delete_api_key_credential_provider, name="weather")


# --- OAuth2 credential providers ----------------------------------------------------------------


def custom_config(discovery_url: str, secret: str, **extra) -> dict:
    return {
        "customOauth2ProviderConfig": {
            "oauthDiscovery": {"discoveryUrl": discovery_url},
            "clientId": "web-app",
            "clientSecret": secret,
            **extra,
        }
    }


@pytest.fixture
def custom_provider(cp, oidc, unique):
    name = unique("custom")
    secret = "client-secret-" + secrets.token_hex(16)
    created = cp.create_oauth2_credential_provider(
        name=name,
        credentialProviderVendor="CustomOauth2",
        oauth2ProviderConfigInput=custom_config(oidc.discovery_url, secret),
    )
    yield name, secret, created
    try:
        cp.delete_oauth2_credential_provider(name=name)
    except ClientError:
        pass


def test_create_custom_oauth2_provider(keygate, oidc, custom_provider):
    name, secret, created = custom_provider
    assert status(created) == 201
    assert created["name"] == name
    assert created["credentialProviderArn"] == OAUTH2_ARN + name
    assert created["callbackUrl"] == keygate.callback_url
    assert created["clientSecretArn"]["secretArn"]
    output = created["oauth2ProviderConfigOutput"]["customOauth2ProviderConfig"]
    assert output["oauthDiscovery"]["discoveryUrl"] == oidc.discovery_url
    assert output["clientId"] == "web-app"
    assert secret not in json.dumps(created, default=str)


def test_get_oauth2_provider_never_shows_the_secret(cp, raw, keygate, custom_provider):
    name, secret, _ = custom_provider
    got = cp.get_oauth2_credential_provider(name=name)
    assert got["name"] == name
    assert got["credentialProviderVendor"] == "CustomOauth2"
    assert got["credentialProviderArn"] == OAUTH2_ARN + name
    assert got["callbackUrl"] == keygate.callback_url
    assert got["clientSecretArn"]["secretArn"]
    assert got["oauth2ProviderConfigOutput"]["customOauth2ProviderConfig"]["clientId"] == "web-app"
    assert isinstance(got["createdTime"], datetime.datetime) and recent(got["createdTime"])
    response = raw("/identities/GetOauth2CredentialProvider", {"name": name})
    assert response.status_code == 200, response.text
    assert secret not in response.text


def test_list_and_delete_oauth2_provider(cp, custom_provider):
    name, _, _ = custom_provider
    listed = {
        p["name"]: p for p in list_all(cp.list_oauth2_credential_providers, "credentialProviders")
    }
    assert listed[name]["credentialProviderVendor"] == "CustomOauth2"
    assert listed[name]["credentialProviderArn"] == OAUTH2_ARN + name
    assert status(cp.delete_oauth2_credential_provider(name=name)) == 204
    raises("ResourceNotFoundException", 404, cp.get_oauth2_credential_provider, name=name)


def test_duplicate_oauth2_provider_conflicts(cp, oidc, custom_provider):
    name, _, _ = custom_provider
    for taken in (name, "idp"):  # "idp" is defined in the config file
        raises(
            "ConflictException",
            409,
            cp.create_oauth2_credential_provider,
            name=taken,
            credentialProviderVendor="CustomOauth2",
            oauth2ProviderConfigInput=custom_config(oidc.discovery_url, "s"),
        )
    raises("ConflictException", 409, cp.delete_oauth2_credential_provider, name="idp")


@pytest.fixture
def explicit_endpoints_provider(cp, oidc, unique):
    """A CustomOauth2 provider given the OpenID provider's endpoints themselves (no discovery
    URL), for its `agent-m2m-post` client, which the provider accepts with client_secret_post
    only. Yields (name, the metadata given, the create response)."""
    discovery = requests.get(oidc.discovery_url, timeout=HTTP_TIMEOUT).json()
    metadata = {
        "issuer": discovery["issuer"],
        "authorizationEndpoint": discovery["authorization_endpoint"],
        "tokenEndpoint": discovery["token_endpoint"],
    }
    assert metadata["issuer"] == oidc.issuer, discovery
    name = unique("explicit")
    created = cp.create_oauth2_credential_provider(
        name=name,
        credentialProviderVendor="CustomOauth2",
        oauth2ProviderConfigInput={
            "customOauth2ProviderConfig": {
                "oauthDiscovery": {"authorizationServerMetadata": metadata},
                "clientId": "agent-m2m-post",
                "clientSecret": M2M_POST_SECRET,
                "clientAuthenticationMethod": "CLIENT_SECRET_POST",
            }
        },
    )
    yield name, metadata, created
    try:
        cp.delete_oauth2_credential_provider(name=name)
    except ClientError:
        pass


def test_m2m_through_explicit_endpoints_and_client_secret_post(
    dp, oidc, wat, explicit_endpoints_provider
):
    name, _, created = explicit_endpoints_provider
    assert status(created) == 201
    response = dp.get_resource_oauth2_token(
        workloadIdentityToken=wat(),
        resourceCredentialProviderName=name,
        scopes=["tools"],
        oauth2Flow="M2M",
    )
    assert "authorizationUrl" not in response
    claims = jwt_claims(response["accessToken"])
    assert (claims["iss"], claims["client_id"]) == (oidc.issuer, "agent-m2m-post")
    assert claims["aud"] == "agents"
    assert "tools" in claims["scope"].split()


def test_explicit_endpoints_are_reported_back_never_the_secret(
    cp, raw, explicit_endpoints_provider
):
    name, metadata, created = explicit_endpoints_provider
    got = cp.get_oauth2_credential_provider(name=name)
    assert got["credentialProviderVendor"] == "CustomOauth2"
    for response in (created, got):
        config = response["oauth2ProviderConfigOutput"]["customOauth2ProviderConfig"]
        assert config["clientId"] == "agent-m2m-post"
        assert config["clientAuthenticationMethod"] == "CLIENT_SECRET_POST"
        discovery = config["oauthDiscovery"]
        assert "discoveryUrl" not in discovery, discovery
        reported = discovery["authorizationServerMetadata"]
        assert {key: reported.get(key) for key in metadata} == metadata, reported
        assert M2M_POST_SECRET not in json.dumps(response, default=str)
    by_hand = raw("/identities/GetOauth2CredentialProvider", {"name": name})
    assert by_hand.status_code == 200, by_hand.text
    assert M2M_POST_SECRET not in by_hand.text


def test_github_provider_gets_githubs_endpoints(cp, unique):
    name = unique("github")
    secret = "gh-secret-" + secrets.token_hex(8)
    created = cp.create_oauth2_credential_provider(
        name=name,
        credentialProviderVendor="GithubOauth2",
        oauth2ProviderConfigInput={
            "githubOauth2ProviderConfig": {"clientId": "gh-client", "clientSecret": secret}
        },
    )
    try:
        assert status(created) == 201
        for response in (created, cp.get_oauth2_credential_provider(name=name)):
            config = response["oauth2ProviderConfigOutput"]["githubOauth2ProviderConfig"]
            assert config["clientId"] == "gh-client"
            metadata = config["oauthDiscovery"]["authorizationServerMetadata"]
            assert metadata["authorizationEndpoint"] == "https://github.com/login/oauth/authorize"
            assert metadata["tokenEndpoint"] == "https://github.com/login/oauth/access_token"
            assert secret not in json.dumps(response, default=str)
    finally:
        cp.delete_oauth2_credential_provider(name=name)


@pytest.mark.parametrize(
    "field, value",
    [
        ("clientSecretSource", "EXTERNAL"),
        (
            "privateEndpoint",
            {
                "selfManagedLatticeResource": {
                    "resourceConfigurationIdentifier": "rcfg-0123456789abcdef0"
                }
            },
        ),
        (
            "certificateConfigurations",
            [
                {
                    "secretsManager": {
                        "secretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:ca"
                    }
                }
            ],
        ),
        ("clientAuthenticationMethod", "PRIVATE_KEY_JWT"),
    ],
)
def test_oauth2_fields_keygate_cannot_honour_are_refused(cp, oidc, unique, field, value):
    name = unique("refused")
    message = raises(
        "ValidationException",
        400,
        cp.create_oauth2_credential_provider,
        name=name,
        credentialProviderVendor="CustomOauth2",
        oauth2ProviderConfigInput=custom_config(oidc.discovery_url, "s", **{field: value}),
    )
    assert field in message
    raises("ResourceNotFoundException", 404, cp.get_oauth2_credential_provider, name=name)


# --- The token vault ----------------------------------------------------------------------------


def test_token_vault_is_service_managed(cp):
    vault = cp.get_token_vault()
    assert vault["tokenVaultId"] == "default"
    assert vault["kmsConfiguration"]["keyType"] == "ServiceManagedKey"
    assert isinstance(vault["lastModifiedDate"], datetime.datetime)


def test_customer_managed_key_is_refused(cp):
    message = raises(
        "ValidationException",
        400,
        cp.set_token_vault_cmk,
        kmsConfiguration={
            "keyType": "CustomerManagedKey",
            "kmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{uuid.uuid4()}",
        },
    )
    assert "keyType" in message or "kmsConfiguration" in message
    assert cp.get_token_vault()["kmsConfiguration"]["keyType"] == "ServiceManagedKey"


def test_service_managed_key_is_accepted(cp):
    response = cp.set_token_vault_cmk(kmsConfiguration={"keyType": "ServiceManagedKey"})
    assert status(response) == 200
    assert response["tokenVaultId"] == "default"
    assert response["kmsConfiguration"]["keyType"] == "ServiceManagedKey"


def test_secrets_given_to_the_api_are_sealed_at_rest(keygate, cp, unique):
    """The vault's files never hold an API key or a client secret in clear: they are sealed
    (AES-256-GCM) before they reach SQLite, its WAL included."""
    api_key = "at-rest-key-" + secrets.token_hex(16)
    client_secret = "at-rest-secret-" + secrets.token_hex(16)
    cp.create_api_key_credential_provider(name=unique("sealed"), apiKey=api_key)
    cp.create_oauth2_credential_provider(
        name=unique("sealed"),
        credentialProviderVendor="GoogleOauth2",
        oauth2ProviderConfigInput={
            "googleOauth2ProviderConfig": {"clientId": "c", "clientSecret": client_secret}
        },
    )
    files = [p for p in keygate.folder.iterdir() if p.name.startswith("keygate.db")]
    assert files, list(keygate.folder.iterdir())
    for path in files:
        data = path.read_bytes()
        for secret in (api_key, client_secret):
            assert secret.encode() not in data, f"{secret} in clear in {path.name}"


@pytest.mark.parametrize(
    "vendor, config",
    [
        # GitHub's member given for Google.
        ("GoogleOauth2", {"githubOauth2ProviderConfig": {"clientId": "c", "clientSecret": "s"}}),
        # Two members at once (botocore refuses this itself; sent raw).
        (
            "GoogleOauth2",
            {
                "googleOauth2ProviderConfig": {"clientId": "c", "clientSecret": "s"},
                "includedOauth2ProviderConfig": {"clientId": "c", "clientSecret": "s"},
            },
        ),
        # A vendor without its own member uses includedOauth2ProviderConfig.
        ("XOauth2", {"googleOauth2ProviderConfig": {"clientId": "c", "clientSecret": "s"}}),
        # Nothing at all (sent raw too).
        ("GoogleOauth2", {}),
    ],
)
def test_the_config_member_must_fit_the_vendor(cp, raw, unique, vendor, config):
    name = unique("misfit")
    response = raw(
        "/identities/CreateOauth2CredentialProvider",
        {"name": name, "credentialProviderVendor": vendor, "oauth2ProviderConfigInput": config},
    )
    message = assert_aws_error(response, 400, "ValidationException")
    assert "oauth2ProviderConfigInput" in message, message
    raises("ResourceNotFoundException", 404, cp.get_oauth2_credential_provider, name=name)


def test_tenant_vendors_need_their_issuer(cp, unique):
    message = raises(
        "ValidationException",
        400,
        cp.create_oauth2_credential_provider,
        name=unique("okta"),
        credentialProviderVendor="OktaOauth2",
        oauth2ProviderConfigInput={"includedOauth2ProviderConfig": {"clientId": "c", "clientSecret": "s"}},
    )
    assert "issuer" in message, message
    created = cp.create_oauth2_credential_provider(
        name=unique("okta"),
        credentialProviderVendor="OktaOauth2",
        oauth2ProviderConfigInput={
            "includedOauth2ProviderConfig": {
                "clientId": "c",
                "clientSecret": "s",
                "issuer": "https://tenant.okta.example/oauth2/default",
            }
        },
    )
    discovery = created["oauth2ProviderConfigOutput"]["includedOauth2ProviderConfig"]["oauthDiscovery"]
    assert discovery == {
        "discoveryUrl": "https://tenant.okta.example/oauth2/default/.well-known/openid-configuration"
    }


def test_moving_a_provider_needs_its_secret_again_and_drops_its_tokens(
    cp, dp, wat, explicit_endpoints_provider
):
    """The stored client secret only ever goes where it went before: pointing the provider at
    another token endpoint without giving the secret again is refused; with it, the tokens
    from the old server are dropped."""
    name, metadata, _ = explicit_endpoints_provider
    token = wat()
    m2m = lambda: dp.get_resource_oauth2_token(  # noqa: E731
        workloadIdentityToken=token,
        resourceCredentialProviderName=name,
        scopes=["tools"],
        oauth2Flow="M2M",
    )["accessToken"]
    first = m2m()
    moved = dict(metadata, tokenEndpoint="https://collector.example.net/token")
    message = raises(
        "ValidationException",
        400,
        cp.update_oauth2_credential_provider,
        name=name,
        credentialProviderVendor="CustomOauth2",
        oauth2ProviderConfigInput={
            "customOauth2ProviderConfig": {
                "oauthDiscovery": {"authorizationServerMetadata": moved},
                "clientId": "agent-m2m-post",
                "clientAuthenticationMethod": "CLIENT_SECRET_POST",
            }
        },
    )
    assert "clientSecret" in message, message
    assert m2m() == first, "a refused update changed nothing"
    # Same endpoints, secret given again: allowed; a plain-http endpoint off this machine: not.
    message = raises(
        "ValidationException",
        400,
        cp.update_oauth2_credential_provider,
        name=name,
        credentialProviderVendor="CustomOauth2",
        oauth2ProviderConfigInput={
            "customOauth2ProviderConfig": {
                "oauthDiscovery": {
                    "authorizationServerMetadata": dict(
                        metadata, tokenEndpoint="http://collector.example.net/token"
                    )
                },
                "clientId": "agent-m2m-post",
                "clientSecret": M2M_POST_SECRET,
                "clientAuthenticationMethod": "CLIENT_SECRET_POST",
            }
        },
    )
    assert "https" in message, message


def test_a_value_of_the_wrong_type_is_not_echoed(raw, wat):
    response = raw(
        "/identities/oauth2/token",
        {
            "workloadIdentityToken": wat(),
            "resourceCredentialProviderName": "m2m",
            "scopes": [],
            "oauth2Flow": "M2M",
            "forceAuthentication": "s3cret-in-the-wrong-field",
        },
    )
    message = assert_aws_error(response, 400, "ValidationException")
    assert "s3cret" not in response.text, response.text
    assert "wrong type" in message, message


def test_credential_provider_quota(start_keygate):
    # Provider names label the token metrics: the API may create only so many.
    small = start_keygate("provider-quota", max_workloads=5, max_providers=2)
    cp = small.client("bedrock-agentcore-control")
    cp.create_api_key_credential_provider(name="quota-key-1", apiKey="k1")
    cp.create_oauth2_credential_provider(
        name="quota-oauth-1",
        credentialProviderVendor="GoogleOauth2",
        oauth2ProviderConfigInput={"googleOauth2ProviderConfig": {"clientId": "c", "clientSecret": "s"}},
    )
    message = raises(
        "ServiceQuotaExceededException",
        402,
        cp.create_api_key_credential_provider,
        name="quota-key-2",
        apiKey="k2",
    )
    assert "max_credential_providers" in message, message
    cp.delete_api_key_credential_provider(name="quota-key-1")
    cp.create_api_key_credential_provider(name="quota-key-2", apiKey="k2")
