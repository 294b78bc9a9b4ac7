"""The audit log of identity API calls (the file in keygate's [audit] path): one JSON line per
call, named after the operation, with the response's request id; never a secret."""

import datetime
import json
import secrets
import time

import pytest
from botocore.exceptions import ClientError

from helpers import API_SECRET, M2M_SECRET, RETURN_URL, WEATHER_KEY, WEB_SECRET, query_of


def request_id(response: dict) -> str:
    rid = response["ResponseMetadata"]["RequestId"]
    assert rid, "x-amzn-RequestId is missing"
    return rid


def failed_request_id(call, **kwargs) -> str:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return request_id(caught.value.response)


def audit_events(path, request_ids: list[str], timeout: float = 2.0) -> dict[str, list[dict]]:
    """The audit events per request id, once every id has a line (the writer flushes every
    200 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        by_id: dict[str, list[dict]] = {}
        for line in text.splitlines():
            if line.strip():
                event = json.loads(line)
                by_id.setdefault(event.get("requestId"), []).append(event)
        missing = [rid for rid in request_ids if rid not in by_id]
        if not missing:
            return by_id
        if time.monotonic() > deadline:
            raise AssertionError(f"no audit line for request ids {missing} in:\n{text[-3000:]}")
        time.sleep(0.05)


def test_each_api_call_is_one_audit_line(keygate, cp, dp, unique):
    workload = unique("audited")
    expected = []  # (request id, event, outcome or None for "denied or error", fields)

    def expect(rid: str, event: str, outcome: str | None, **fields) -> None:
        expected.append((rid, event, outcome, fields))

    r = cp.create_workload_identity(name=workload)
    expect(request_id(r), "CreateWorkloadIdentity", "success", workload=workload)
    r = dp.get_workload_access_token_for_user_id(workloadName=workload, userId="audit-user")
    wat = r["workloadAccessToken"]
    expect(
        request_id(r),
        "GetWorkloadAccessTokenForUserId",
        "success",
        workload=workload,
        user="audit-user",
    )
    r = dp.get_resource_api_key(workloadIdentityToken=wat, resourceCredentialProviderName="weather")
    expect(
        request_id(r),
        "GetResourceApiKey",
        "success",
        workload=workload,
        user="audit-user",
        provider="weather",
    )
    r = dp.get_resource_oauth2_token(
        workloadIdentityToken=wat,
        resourceCredentialProviderName="m2m",
        scopes=["tools"],
        oauth2Flow="M2M",
    )
    expect(request_id(r), "GetResourceOauth2Token", "success", workload=workload, provider="m2m")
    rid = failed_request_id(
        dp.get_resource_api_key,
        workloadIdentityToken="not-a-token",
        resourceCredentialProviderName="weather",
    )
    expect(rid, "GetResourceApiKey", "denied")
    rid = failed_request_id(
        dp.get_resource_api_key,
        workloadIdentityToken=wat,
        resourceCredentialProviderName="no-such-provider",
    )
    expect(rid, "GetResourceApiKey", None)
    r = cp.delete_workload_identity(name=workload)
    expect(request_id(r), "DeleteWorkloadIdentity", "success", workload=workload)

    events = audit_events(keygate.audit_path, [e[0] for e in expected])
    now = datetime.datetime.now(datetime.timezone.utc)
    for rid, name, outcome, fields in expected:
        assert len(events[rid]) == 1, f"{name}: {events[rid]}"
        event = events[rid][0]
        assert event["event"] == name, event
        if outcome is None:
            assert event["outcome"] in ("denied", "error"), event
        else:
            assert event["outcome"] == outcome, event
        if event["outcome"] != "success":
            assert event.get("reason"), event
        for key, value in fields.items():
            assert event.get(key) == value, (key, event)
        assert event["sourceIp"] == "127.0.0.1", event
        when = datetime.datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
        assert abs((now - when).total_seconds()) < 60, event


def test_no_secret_reaches_the_audit_log(keygate, cp, dp, oidc, browser, user_token, unique):
    api_key = "audit-key-" + secrets.token_hex(16)
    rotated_key = "audit-key-" + secrets.token_hex(16)
    client_secret = "audit-client-secret-" + secrets.token_hex(16)
    wrong_sigv4_secret = "wrong-sigv4-" + secrets.token_hex(16)
    key_provider, oauth_provider = unique("auditkey"), unique("auditoauth")
    # Every secret the calls below send, configure or receive.
    used = [API_SECRET, WEATHER_KEY, WEB_SECRET, M2M_SECRET, api_key, rotated_key, client_secret]
    rids = []

    def audited(response: dict) -> dict:
        rids.append(request_id(response))
        return response

    audited(cp.create_api_key_credential_provider(name=key_provider, apiKey=api_key))
    audited(cp.update_api_key_credential_provider(name=key_provider, apiKey=rotated_key))
    audited(
        cp.create_oauth2_credential_provider(
            name=oauth_provider,
            credentialProviderVendor="CustomOauth2",
            oauth2ProviderConfigInput={
                "customOauth2ProviderConfig": {
                    "oauthDiscovery": {"discoveryUrl": oidc.discovery_url},
                    "clientId": "web-app",
                    "clientSecret": client_secret,
                }
            },
        )
    )
    jwt = user_token("audit-jwt-user")
    wat = audited(dp.get_workload_access_token_for_jwt(workloadName="ConfigAgent", userToken=jwt))[
        "workloadAccessToken"
    ]
    used += [jwt, wat]
    for provider in ("weather", key_provider):
        used.append(
            audited(
                dp.get_resource_api_key(
                    workloadIdentityToken=wat, resourceCredentialProviderName=provider
                )
            )["apiKey"]
        )
    m2m = dp.get_resource_oauth2_token(
        workloadIdentityToken=wat,
        resourceCredentialProviderName="m2m",
        scopes=["tools"],
        oauth2Flow="M2M",
    )
    used.append(audited(m2m)["accessToken"])

    # A consent, completed with the user's JWT, and the user's token it vaults.
    user_federation = dict(
        workloadIdentityToken=wat,
        resourceCredentialProviderName="idp",
        scopes=["openid"],
        oauth2Flow="USER_FEDERATION",
        resourceOauth2ReturnUrl=RETURN_URL,
    )
    started = audited(dp.get_resource_oauth2_token(**user_federation))
    session_uri = started["sessionUri"]
    final = browser.drive(started["authorizationUrl"], login="audit-jwt-user")
    assert query_of(final)["session_id"] == session_uri
    audited(
        dp.complete_resource_token_auth(sessionUri=session_uri, userIdentifier={"userToken": jwt})
    )
    done = dp.get_resource_oauth2_token(**user_federation, sessionUri=session_uri)
    used.append(audited(done)["accessToken"])

    # A call signed with a wrong secret.
    with pytest.raises(ClientError):
        keygate.client("bedrock-agentcore", secret=wrong_sigv4_secret).get_workload_access_token(
            workloadName="ConfigAgent"
        )
    used.append(wrong_sigv4_secret)

    audited(cp.delete_api_key_credential_provider(name=key_provider))
    audited(cp.delete_oauth2_credential_provider(name=oauth_provider))

    audit_events(keygate.audit_path, rids)
    text = keygate.audit_path.read_text()
    # A JWT's signature alone is as good as a leak of the JWT.
    used += [t.split(".")[2] for t in used if t.count(".") == 2]
    leaked = [s for s in used if s in text]
    if leaked:
        pytest.fail(f"secrets in the audit log: {[s[:12] + '...' for s in leaked]}")
