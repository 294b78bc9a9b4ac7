"""3-legged OAuth (USER_FEDERATION) through boto3, with a headless browser at the real OpenID
provider: session shape and polling, binding of the session to the user who started it, return
URLs, custom parameters."""

import re
import secrets

import pytest
import requests
from botocore.exceptions import ClientError

from helpers import RETURN_URL, client_error, jwt_claims, query_of

SESSION_URI = re.compile(r"urn:ietf:params:oauth:request_uri:[a-zA-Z0-9-._~]+")


def request_token(dp, wat: str, scopes=("openid",), **extra) -> dict:
    """GetResourceOauth2Token for the config's `idp` provider (the OpenID provider's web client)."""
    return dp.get_resource_oauth2_token(
        workloadIdentityToken=wat,
        resourceCredentialProviderName="idp",
        scopes=list(scopes),
        oauth2Flow="USER_FEDERATION",
        **extra,
    )


def raises(code: str, http_status: int, call, **kwargs) -> str:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    got_code, got_status, message = client_error(caught)
    assert (got_code, got_status) == (code, http_status), caught.value.response
    return message


def assert_in_progress(response: dict) -> None:
    assert response.get("sessionStatus") == "IN_PROGRESS", response
    assert "accessToken" not in response
    assert SESSION_URI.fullmatch(response["sessionUri"]), response["sessionUri"]


@pytest.fixture
def user():
    """A fresh user id: vaulted tokens are per workload and user."""
    return "user-" + secrets.token_hex(4)


def test_session_polls_in_progress_until_completed(dp, keygate, browser, wat, user):
    token = wat(user_id=user)
    started = request_token(dp, token, resourceOauth2ReturnUrl=RETURN_URL)
    assert_in_progress(started)
    session_uri = started["sessionUri"]
    url = started["authorizationUrl"]
    assert url.startswith(keygate.url + "/identities/oauth2/authorize?"), url
    assert query_of(url)["request_uri"] == session_uri

    polled = request_token(dp, token, resourceOauth2ReturnUrl=RETURN_URL, sessionUri=session_uri)
    assert_in_progress(polled)
    assert polled["sessionUri"] == session_uri

    # Not authorized at the provider yet: nothing to complete.
    raises(
        "ValidationException",
        400,
        dp.complete_resource_token_auth,
        sessionUri=session_uri,
        userIdentifier={"userId": user},
    )

    final = browser.drive(url, login=user)
    assert final.startswith(RETURN_URL + "?"), final
    assert query_of(final) == {"session_id": session_uri}

    # Authorized at the provider, but the app has not confirmed the user yet.
    assert_in_progress(
        request_token(dp, token, resourceOauth2ReturnUrl=RETURN_URL, sessionUri=session_uri)
    )

    completed = dp.complete_resource_token_auth(
        sessionUri=session_uri, userIdentifier={"userId": user}
    )
    assert completed["ResponseMetadata"]["HTTPStatusCode"] == 200

    done = request_token(dp, token, resourceOauth2ReturnUrl=RETURN_URL, sessionUri=session_uri)
    access_token = done["accessToken"]
    assert jwt_claims(access_token)["sub"] == user
    assert "authorizationUrl" not in done

    # Vaulted: the next request gets the token without a session.
    again = request_token(dp, token, resourceOauth2ReturnUrl=RETURN_URL)
    assert again.get("accessToken") == access_token
    assert "authorizationUrl" not in again


def test_provider_authorization_redirect(dp, oidc, keygate, wat, user):
    started = request_token(
        dp,
        wat(user_id=user),
        resourceOauth2ReturnUrl=RETURN_URL,
        customParameters={"ui_locales": "de", "login_hint": "dave@example.com"},
    )
    response = requests.get(started["authorizationUrl"], allow_redirects=False, timeout=15)
    assert response.status_code in (302, 303), (response.status_code, response.text)
    location = response.headers["Location"]
    assert location.startswith(oidc.issuer + "/auth?"), location
    query = query_of(location)
    assert query["ui_locales"] == "de"
    assert query["login_hint"] == "dave@example.com"
    assert query["client_id"] == "web-app"
    assert query["redirect_uri"] == keygate.callback_url
    assert query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["scope"].split() == ["openid"]
    assert query["state"]
    assert "session_id" not in query and "request_uri" not in query


def test_completion_by_another_user_fails_the_session(dp, browser, wat, user):
    other = user + "-other"
    token = wat(user_id=user)
    started = request_token(dp, token, resourceOauth2ReturnUrl=RETURN_URL)
    session_uri = started["sessionUri"]
    final = browser.drive(started["authorizationUrl"], login=user)
    assert query_of(final)["session_id"] == session_uri

    raises(
        "AccessDeniedException",
        403,
        dp.complete_resource_token_auth,
        sessionUri=session_uri,
        userIdentifier={"userId": other},
    )

    polled = request_token(dp, token, resourceOauth2ReturnUrl=RETURN_URL, sessionUri=session_uri)
    assert polled.get("sessionStatus") == "FAILED", polled
    assert "accessToken" not in polled

    # The session is spent: not even the right user can complete it now.
    with pytest.raises(ClientError):
        dp.complete_resource_token_auth(sessionUri=session_uri, userIdentifier={"userId": user})

    # Nothing was vaulted for either user: both are asked to consent again.
    for who, their_token in ((user, token), (other, wat(user_id=other))):
        fresh = request_token(dp, their_token, resourceOauth2ReturnUrl=RETURN_URL)
        assert "accessToken" not in fresh, f"a token was vaulted for {who}"
        assert_in_progress(fresh)
        assert fresh["sessionUri"] != session_uri


def test_completion_with_the_users_jwt(dp, oidc, browser, user_token):
    # The workload acts for a JWT user; the app confirms with that user's JWT.
    jwt = user_token("erin")
    token = dp.get_workload_access_token_for_jwt(workloadName="ConfigAgent", userToken=jwt)[
        "workloadAccessToken"
    ]
    started = request_token(dp, token, resourceOauth2ReturnUrl=RETURN_URL)
    session_uri = started["sessionUri"]
    browser.drive(started["authorizationUrl"], login="erin")
    dp.complete_resource_token_auth(sessionUri=session_uri, userIdentifier={"userToken": jwt})
    done = request_token(dp, token, resourceOauth2ReturnUrl=RETURN_URL, sessionUri=session_uri)
    claims = jwt_claims(done["accessToken"])
    assert (claims["iss"], claims["sub"]) == (oidc.issuer, "erin")


def test_return_url_must_be_allowed(dp, wat, user):
    message = raises(
        "ValidationException",
        400,
        dp.get_resource_oauth2_token,
        workloadIdentityToken=wat(user_id=user),
        resourceCredentialProviderName="idp",
        scopes=["openid"],
        oauth2Flow="USER_FEDERATION",
        resourceOauth2ReturnUrl="https://evil.example.com/cb",
    )
    assert "resourceOauth2ReturnUrl" in message


def test_return_url_defaults_to_the_only_allowed_one(dp, browser, wat, user):
    started = request_token(dp, wat(user_id=user))  # ConfigAgent allows exactly one
    assert_in_progress(started)
    final = browser.drive(started["authorizationUrl"], login=user)
    assert final.startswith(RETURN_URL + "?"), final


def test_return_url_is_required_when_several_are_allowed(cp, dp, wat, user, unique):
    name = unique("agent")
    cp.create_workload_identity(
        name=name, allowedResourceOauth2ReturnUrls=[RETURN_URL, "https://other.example.com/cb"]
    )
    try:
        message = raises(
            "ValidationException",
            400,
            dp.get_resource_oauth2_token,
            workloadIdentityToken=wat(name, user_id=user),
            resourceCredentialProviderName="idp",
            scopes=["openid"],
            oauth2Flow="USER_FEDERATION",
        )
        assert "resourceOauth2ReturnUrl" in message
    finally:
        cp.delete_workload_identity(name=name)


def test_unknown_session(dp, wat, user):
    # Polling cannot tell an unknown session from an expired one: both are FAILED.
    unknown = "urn:ietf:params:oauth:request_uri:" + secrets.token_urlsafe(16)
    polled = request_token(
        dp, wat(user_id=user), resourceOauth2ReturnUrl=RETURN_URL, sessionUri=unknown
    )
    assert polled.get("sessionStatus") == "FAILED", polled
    assert "accessToken" not in polled and "authorizationUrl" not in polled
    raises(
        "ResourceNotFoundException",
        404,
        dp.complete_resource_token_auth,
        sessionUri=unknown,
        userIdentifier={"userId": user},
    )


def test_only_the_sessions_user_may_poll_it(dp, wat, user):
    # Another user polling the session learns nothing, not even that it exists: the answer is
    # the one for a session nobody started.
    started = request_token(dp, wat(user_id=user), resourceOauth2ReturnUrl=RETURN_URL)
    unknown = "urn:ietf:params:oauth:request_uri:" + secrets.token_urlsafe(16)
    other = wat(user_id=user + "-other")
    answers = []
    for session_uri in (started["sessionUri"], unknown):
        polled = request_token(
            dp, other, resourceOauth2ReturnUrl=RETURN_URL, sessionUri=session_uri
        )
        polled.pop("ResponseMetadata", None)
        assert polled.pop("sessionUri") == session_uri
        answers.append(polled)
    assert answers[0] == answers[1] == {"sessionStatus": "FAILED"}, answers
    # The session itself is untouched: its own user still sees it in progress.
    mine = request_token(
        dp, wat(user_id=user), resourceOauth2ReturnUrl=RETURN_URL, sessionUri=started["sessionUri"]
    )
    assert_in_progress(mine)


def test_a_recreated_workload_does_not_inherit_the_deleted_ones_tokens(cp, dp, browser, wat, user, unique):
    name = unique("recreated")
    cp.create_workload_identity(name=name, allowedResourceOauth2ReturnUrls=[RETURN_URL])
    token = wat(workload=name, user_id=user)
    started = request_token(dp, token)
    browser.drive(started["authorizationUrl"], login=user)
    dp.complete_resource_token_auth(sessionUri=started["sessionUri"], userIdentifier={"userId": user})
    assert "accessToken" in request_token(dp, token)

    # Deleted and created again under the same name: a different agent, with nothing vaulted.
    cp.delete_workload_identity(name=name)
    raises("UnauthorizedException", 401, request_token, dp=dp, wat=token)
    cp.create_workload_identity(name=name, allowedResourceOauth2ReturnUrls=[RETURN_URL])
    assert_in_progress(request_token(dp, wat(workload=name, user_id=user)))


def test_reserved_and_too_many_custom_parameters_are_refused(dp, wat, user):
    token = wat(user_id=user)
    for name in ["redirect_uri", "audience", "resource", "response_mode", "request"]:
        message = raises(
            "ValidationException",
            400,
            request_token,
            dp=dp,
            wat=token,
            resourceOauth2ReturnUrl=RETURN_URL,
            customParameters={name: "x"},
        )
        assert "customParameters" in message and name in message, message
    many = {f"p{i}": "x" for i in range(21)}
    message = raises(
        "ValidationException",
        400,
        request_token,
        dp=dp,
        wat=token,
        resourceOauth2ReturnUrl=RETURN_URL,
        customParameters=many,
    )
    assert "at most 20" in message, message


def test_a_session_of_a_deleted_workload_cannot_be_completed(cp, dp, browser, wat, user, unique):
    name = unique("gone")
    cp.create_workload_identity(name=name, allowedResourceOauth2ReturnUrls=[RETURN_URL])
    started = request_token(dp, wat(workload=name, user_id=user))
    browser.drive(started["authorizationUrl"], login=user)
    cp.delete_workload_identity(name=name)
    raises(
        "ResourceNotFoundException",
        404,
        dp.complete_resource_token_auth,
        sessionUri=started["sessionUri"],
        userIdentifier={"userId": user},
    )
    # Recreated under the same name: nothing of the old session reaches it.
    cp.create_workload_identity(name=name, allowedResourceOauth2ReturnUrls=[RETURN_URL])
    assert_in_progress(request_token(dp, wat(workload=name, user_id=user)))


def test_openid_with_resource_scopes_consents_once(dp, browser, wat, user):
    """Asked for `openid offline_access tools`, the provider (resource indicators on, as real
    providers behave) echoes only `tools`: the completed consent must serve the poll and every
    later request for the same scopes, with no second consent."""
    scopes = ["openid", "offline_access", "tools"]
    token = wat(user_id=user)
    started = request_token(dp, token, resourceOauth2ReturnUrl=RETURN_URL, scopes=scopes)
    assert_in_progress(started)
    session_uri = started["sessionUri"]
    browser.drive(started["authorizationUrl"], login=user)
    dp.complete_resource_token_auth(sessionUri=session_uri, userIdentifier={"userId": user})

    done = request_token(
        dp, token, resourceOauth2ReturnUrl=RETURN_URL, sessionUri=session_uri, scopes=scopes
    )
    access_token = done.get("accessToken")
    assert access_token, done
    claims = jwt_claims(access_token)
    assert claims["sub"] == user
    assert "openid" not in claims.get("scope", "").split(), claims
    for _ in range(3):
        again = request_token(dp, token, resourceOauth2ReturnUrl=RETURN_URL, scopes=scopes)
        assert again.get("accessToken") == access_token, again
    # A subset of what was consented to is served too.
    subset = request_token(dp, token, resourceOauth2ReturnUrl=RETURN_URL, scopes=["tools"])
    assert subset.get("accessToken") == access_token, subset
