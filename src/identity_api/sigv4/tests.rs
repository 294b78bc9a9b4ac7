//! SigV4 verification against signatures computed as botocore computes them.

use super::*;
use secrecy::SecretString;

fn key(id: &str, secret: &str) -> ApiCredential {
    ApiCredential {
        access_key_id: id.to_string(),
        secret_access_key: SecretString::from(secret.to_string()),
    }
}

/// AWS's published SigV4 test suite, case `get-vanilla`.
#[test]
fn aws_test_suite_get_vanilla() {
    let mut headers = HeaderMap::new();
    headers.insert("host", "example.amazonaws.com".parse().unwrap());
    headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
    let request = Signed {
        method: "GET",
        path: "/",
        query: None,
        headers: &headers,
        host: None,
        body: b"",
    };
    let canonical = canonical_request(&request, &["host", "x-amz-date"], &sha256_hex(b""));
    let sts = format!(
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n{}",
        sha256_hex(canonical.as_bytes())
    );
    assert_eq!(
        sha256_hex(canonical.as_bytes()),
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    );
    assert_eq!(
        signature(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "service",
            &sts
        ),
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
}

#[test]
fn dates_round_trip() {
    for secs in [0, 951_782_400, 1_440_938_160, 1_795_000_000, 4_102_444_799] {
        assert_eq!(parse_amz_date(&format_amz_date(secs)), Some(secs));
    }
    assert_eq!(format_amz_date(1_440_938_160), "20150830T123600Z");
    assert_eq!(parse_amz_date("20150830T123600"), None);
    assert_eq!(parse_amz_date("2015083OT123600Z"), None);
    assert_eq!(parse_amz_date("00000101T000000Z"), None);
}

fn signed_request(creds: &ApiCredential, at: SystemTime, body: &[u8]) -> (HeaderMap, Vec<u8>) {
    let mut headers = HeaderMap::new();
    headers.insert("host", "127.0.0.1:8080".parse().unwrap());
    for (name, value) in sign(
        creds,
        "us-west-2",
        "POST",
        "127.0.0.1:8080",
        "/identities/GetWorkloadAccessToken",
        body,
        at,
    ) {
        headers.insert(name, value.parse().unwrap());
    }
    (headers, body.to_vec())
}

fn check(headers: &HeaderMap, body: &[u8], keys: &[ApiCredential]) -> Result<String, SigV4Error> {
    let request = Signed {
        method: "POST",
        path: "/identities/GetWorkloadAccessToken",
        query: None,
        headers,
        host: None,
        body,
    };
    verify(&request, keys, "us-west-2", SystemTime::now()).map(str::to_string)
}

#[test]
fn accepts_good_and_refuses_every_kind_of_bad() {
    let good = key("AKIDGOOD", "secret-one");
    let keys = [key("AKIDOTHER", "secret-two"), good.clone()];
    let (headers, body) = signed_request(&good, SystemTime::now(), b"{\"a\":1}");
    assert_eq!(check(&headers, &body, &keys).as_deref(), Ok("AKIDGOOD"));
    // Body changed after signing.
    assert_eq!(
        check(&headers, b"{\"a\":2}", &keys),
        Err(SigV4Error::Mismatch)
    );
    // Wrong secret.
    let (forged, _) = signed_request(&key("AKIDGOOD", "guess"), SystemTime::now(), &body);
    assert_eq!(check(&forged, &body, &keys), Err(SigV4Error::Mismatch));
    // Unknown key.
    let (unknown, _) = signed_request(&key("AKIDNOPE", "x"), SystemTime::now(), &body);
    assert_eq!(check(&unknown, &body, &keys), Err(SigV4Error::UnknownKey));
    // Stale either way.
    let past = SystemTime::now() - Duration::from_secs(301);
    let (old, _) = signed_request(&good, past, &body);
    assert_eq!(check(&old, &body, &keys), Err(SigV4Error::Stale));
    let future = SystemTime::now() + Duration::from_secs(400);
    let (ahead, _) = signed_request(&good, future, &body);
    assert_eq!(check(&ahead, &body, &keys), Err(SigV4Error::Stale));
    // Within the window is fine.
    let (recent, _) = signed_request(&good, SystemTime::now() - Duration::from_secs(200), &body);
    assert!(check(&recent, &body, &keys).is_ok());
    // Unsigned.
    let mut none = headers.clone();
    none.remove("authorization");
    assert_eq!(check(&none, &body, &keys), Err(SigV4Error::Missing));
    // A claimed body hash that does not match the body.
    let mut claimed = headers.clone();
    claimed.insert(
        "x-amz-content-sha256",
        sha256_hex(b"other").parse().unwrap(),
    );
    assert_eq!(check(&claimed, &body, &keys), Err(SigV4Error::BodyHash));
    // Another region in the scope.
    let auth = headers["authorization"]
        .to_str()
        .unwrap()
        .replace("us-west-2", "eu-west-1");
    let mut region = headers.clone();
    region.insert("authorization", auth.parse().unwrap());
    assert!(matches!(
        check(&region, &body, &keys),
        Err(SigV4Error::WrongScope { .. })
    ));
    // Host not signed.
    let auth = headers["authorization"]
        .to_str()
        .unwrap()
        .replace("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date");
    let mut unsigned_host = headers.clone();
    unsigned_host.insert("authorization", auth.parse().unwrap());
    assert_eq!(
        check(&unsigned_host, &body, &keys),
        Err(SigV4Error::UnsignedHeaders)
    );
    // Another host than the one signed.
    let mut moved = headers.clone();
    moved.insert("host", "127.0.0.1:9090".parse().unwrap());
    assert_eq!(check(&moved, &body, &keys), Err(SigV4Error::Mismatch));
}

#[test]
fn canonical_forms_follow_aws() {
    assert_eq!(canonical_uri("/identities/a b"), "/identities/a%20b");
    assert_eq!(canonical_uri("/x%2Fy"), "/x%252Fy");
    assert_eq!(
        canonical_query(Some("b=2&a=1&a=0&c=x%20y")),
        "a=0&a=1&b=2&c=x%20y"
    );
    assert_eq!(canonical_value(b"  a   b  c "), "a b c");
}
