"""SigV4 on the identity API: only requests signed with a configured key, over the exact bytes
sent, within 5 minutes of now, are served; everything else is 403 AccessDeniedException in
AWS's error shape."""

import datetime

import pytest
from botocore.exceptions import ClientError

from helpers import API_SECRET, assert_aws_error, client_error

LIST = "/identities/ListWorkloadIdentities"


def test_a_correctly_signed_call_is_served(cp, raw):
    response = cp.get_workload_identity(name="ConfigAgent")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["ResponseMetadata"]["RequestId"], "x-amzn-RequestId is set"
    assert response["name"] == "ConfigAgent"

    by_hand = raw(LIST, {})
    assert by_hand.status_code == 200, by_hand.text
    assert by_hand.headers.get("x-amzn-RequestId")
    assert "workloadIdentities" in by_hand.json()


def test_wrong_secret_is_denied(keygate):
    client = keygate.client("bedrock-agentcore-control", secret=API_SECRET + "x")
    with pytest.raises(ClientError) as caught:
        client.list_workload_identities()
    code, status, message = client_error(caught)
    assert (code, status) == ("AccessDeniedException", 403)
    assert message
    assert caught.value.response["ResponseMetadata"]["RequestId"]


def test_unknown_access_key_is_denied(keygate):
    client = keygate.client("bedrock-agentcore", access_key="AKIDSOMEBODYELSE0000")
    with pytest.raises(ClientError) as caught:
        client.get_workload_access_token(workloadName="ConfigAgent")
    assert client_error(caught)[:2] == ("AccessDeniedException", 403)


def test_body_changed_after_signing_is_denied(raw):
    # Signed for one workload, sent for another (a valid request in itself).
    signed = b'{"workloadName": "SomeOtherAgent"}'
    response = raw(
        "/identities/GetWorkloadAccessToken", signed, send_body=b'{"workloadName": "ConfigAgent"}'
    )
    assert_aws_error(response, 403, "AccessDeniedException")
    assert "workloadAccessToken" not in response.text


def test_signature_ten_minutes_old_is_denied(raw):
    ten_minutes_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)
    response = raw(LIST, {}, signed_at=ten_minutes_ago)
    assert_aws_error(response, 403, "AccessDeniedException")


def test_signature_from_the_future_is_denied(raw):
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=10)
    assert_aws_error(raw(LIST, {}, signed_at=later), 403, "AccessDeniedException")


def test_signature_a_minute_old_is_served(raw):
    a_minute_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
    response = raw(LIST, {}, signed_at=a_minute_ago)
    assert response.status_code == 200, response.text


def test_signed_for_another_region_is_denied(raw):
    assert_aws_error(raw(LIST, {}, region="eu-west-1"), 403, "AccessDeniedException")


def test_unsigned_request_is_denied(raw):
    response = raw(
        "/identities/GetWorkloadAccessToken", {"workloadName": "ConfigAgent"}, sign=False
    )
    assert_aws_error(response, 403, "AccessDeniedException")
    assert "workloadAccessToken" not in response.text


def test_a_replayed_request_is_refused_and_audited(keygate, cp, unique):
    """A captured signed request resent within its 5 minutes does nothing: here a delete that,
    replayed after the workload was created again, would delete the new one."""
    import json
    import time

    import requests

    from helpers import signed_parts

    name = unique("Replayed")
    cp.create_workload_identity(name=name)
    path = "/identities/DeleteWorkloadIdentity"
    headers, body = signed_parts(keygate.url, path, {"name": name}, secret=API_SECRET)
    first = requests.post(keygate.url + path, data=body, headers=headers, timeout=10)
    assert first.status_code == 204, first.text
    cp.create_workload_identity(name=name)
    # Later than the client's own same-second repeat (served: boto3 signs those identically).
    time.sleep(2.5)
    replayed = requests.post(keygate.url + path, data=body, headers=headers, timeout=10)
    assert_aws_error(replayed, 403, "AccessDeniedException")
    assert cp.get_workload_identity(name=name)["name"] == name, "the replay deleted it"
    request_id = replayed.headers["x-amzn-RequestId"]
    deadline = time.time() + 5
    while time.time() < deadline:
        lines = [json.loads(line) for line in keygate.audit_path.read_text().splitlines()]
        found = [line for line in lines if line.get("requestId") == request_id]
        if found:
            break
        time.sleep(0.1)
    assert found and found[0]["outcome"] == "denied" and found[0]["reason"] == "replay", found
