//! Envelope encryption of everything the vault keeps. Each record gets a fresh 256-bit data key;
//! the data is sealed with it (AES-256-GCM) and the data key is sealed with the current
//! key-encryption key. Both seals carry associated data naming the record's owner (kind,
//! workload, user, provider, scope), so a ciphertext copied into another owner's row fails to
//! open. The row's record version is bound too, so an older ciphertext replayed into a row that
//! has since been rewritten fails to open as well. Rotation re-seals under the new
//! key-encryption key with the same version.
//!
//! Layout: `1 | len(kek_id) | kek_id | dek_nonce(12) | wrapped_dek(32+16) | nonce(12) | ciphertext+tag`.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use super::keys::{KEY_BYTES, Kek, KeyRing};
use super::owner::Owner;

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("record is malformed")]
    Malformed,
    #[error("record was sealed by an unknown key")]
    UnknownKey,
    #[error("record failed to open (tampered, moved to another owner, or wrong key)")]
    Integrity,
    #[error("random number generator failed")]
    Random,
}

/// The owner as an unambiguous byte string: each field length-prefixed, then the record
/// version.
fn owner_aad(owner: &Owner, purpose: &str, kek_id: &str, version: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(136);
    for part in [
        purpose,
        kek_id,
        owner.kind.as_str(),
        &owner.workload,
        &owner.user_issuer,
        &owner.user_id,
        &owner.provider,
        &owner.qualifier,
    ] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(&version.to_be_bytes());
    out
}

fn key(bytes: &[u8]) -> Result<LessSafeKey, SealError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::Malformed)
}

fn random<const N: usize>() -> Result<[u8; N], SealError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| SealError::Random)?;
    Ok(out)
}

fn seal_with(
    key: &LessSafeKey,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<([u8; NONCE_LEN], Vec<u8>), SealError> {
    let nonce: [u8; NONCE_LEN] = random()?;
    let mut in_out = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut in_out,
    )
    .map_err(|_| SealError::Integrity)?;
    Ok((nonce, in_out))
}

fn open_with(
    key: &LessSafeKey,
    aad: &[u8],
    nonce: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Malformed)?;
    let mut in_out = sealed.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad), &mut in_out)
        .map_err(|_| SealError::Integrity)?;
    Ok(plain.to_vec())
}

/// A fresh record version for a write.
pub fn new_version() -> Result<i64, SealError> {
    let bytes: [u8; 8] = random()?;
    Ok(i64::from_be_bytes(bytes) & i64::MAX)
}

/// Seals `plaintext` for `owner` (at record `version`) under the ring's current key.
pub fn seal(
    ring: &KeyRing,
    owner: &Owner,
    version: i64,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let dek: [u8; KEY_BYTES] = random()?;
    seal_with_dek(&ring.current, owner, version, &dek, plaintext)
}

fn seal_with_dek(
    kek: &Kek,
    owner: &Owner,
    version: i64,
    dek: &[u8; KEY_BYTES],
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let (dek_nonce, wrapped) = seal_with(
        &key(kek.expose())?,
        &owner_aad(owner, "dek", &kek.id, version),
        dek,
    )?;
    let (nonce, ciphertext) = seal_with(
        &key(dek)?,
        &owner_aad(owner, "data", "", version),
        plaintext,
    )?;
    let id = kek.id.as_bytes();
    let mut out =
        Vec::with_capacity(2 + id.len() + NONCE_LEN * 2 + wrapped.len() + ciphertext.len());
    out.push(VERSION);
    out.push(u8::try_from(id.len()).map_err(|_| SealError::Malformed)?);
    out.extend_from_slice(id);
    out.extend_from_slice(&dek_nonce);
    out.extend_from_slice(&wrapped);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

fn take(rest: &[u8], n: usize) -> Result<(&[u8], &[u8]), SealError> {
    if rest.len() < n {
        Err(SealError::Malformed)
    } else {
        Ok(rest.split_at(n))
    }
}

struct Parsed<'a> {
    kek_id: &'a str,
    dek_nonce: &'a [u8],
    wrapped: &'a [u8],
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

fn parse(sealed: &[u8]) -> Result<Parsed<'_>, SealError> {
    let (&version, rest) = sealed.split_first().ok_or(SealError::Malformed)?;
    if version != VERSION {
        return Err(SealError::Malformed);
    }
    let (&id_len, rest) = rest.split_first().ok_or(SealError::Malformed)?;
    let (id, rest) = take(rest, id_len as usize)?;
    let (dek_nonce, rest) = take(rest, NONCE_LEN)?;
    let (wrapped, rest) = take(rest, KEY_BYTES + TAG_LEN)?;
    let (nonce, ciphertext) = take(rest, NONCE_LEN)?;
    if ciphertext.len() < TAG_LEN {
        return Err(SealError::Malformed);
    }
    Ok(Parsed {
        kek_id: std::str::from_utf8(id).map_err(|_| SealError::Malformed)?,
        dek_nonce,
        wrapped,
        nonce,
        ciphertext,
    })
}

/// The id of the key that sealed a record.
pub fn sealed_by(sealed: &[u8]) -> Result<&str, SealError> {
    parse(sealed).map(|p| p.kek_id)
}

fn unwrap_dek(
    ring: &KeyRing,
    owner: &Owner,
    version: i64,
    parsed: &Parsed<'_>,
) -> Result<[u8; KEY_BYTES], SealError> {
    let kek = ring.find(parsed.kek_id).ok_or(SealError::UnknownKey)?;
    let dek = open_with(
        &key(kek.expose())?,
        &owner_aad(owner, "dek", &kek.id, version),
        parsed.dek_nonce,
        parsed.wrapped,
    )?;
    dek.try_into().map_err(|_| SealError::Integrity)
}

/// Opens a record sealed for `owner` by any key in the ring.
pub fn open(
    ring: &KeyRing,
    owner: &Owner,
    version: i64,
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    let parsed = parse(sealed)?;
    let dek = unwrap_dek(ring, owner, version, &parsed)?;
    open_with(
        &key(&dek)?,
        &owner_aad(owner, "data", "", version),
        parsed.nonce,
        parsed.ciphertext,
    )
}

/// Re-seals a record under the ring's current key (checking the data still opens first).
pub(crate) fn reseal(
    ring: &KeyRing,
    owner: &Owner,
    version: i64,
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    let plaintext = open(ring, owner, version, sealed)?;
    seal(ring, owner, version, &plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(current: u8, previous: &[u8]) -> KeyRing {
        KeyRing {
            current: Kek::from_bytes([current; 32]),
            previous: previous.iter().map(|b| Kek::from_bytes([*b; 32])).collect(),
        }
    }

    fn owner(user: &str) -> Owner {
        Owner::user_token("agent", "https://idp", user, "docs")
    }

    #[test]
    fn round_trip() {
        let r = ring(1, &[]);
        let sealed = seal(&r, &owner("alice"), 1, b"token-a").unwrap();
        assert_eq!(open(&r, &owner("alice"), 1, &sealed).unwrap(), b"token-a");
        assert_eq!(sealed_by(&sealed).unwrap(), r.current.id);
        assert!(!sealed.windows(7).any(|w| w == b"token-a"));
    }

    #[test]
    fn a_record_moved_to_another_owner_does_not_open() {
        let r = ring(1, &[]);
        let sealed = seal(&r, &owner("alice"), 1, b"token-a").unwrap();
        assert_eq!(
            open(&r, &owner("bob"), 1, &sealed),
            Err(SealError::Integrity)
        );
        let mut other_issuer = owner("alice");
        other_issuer.user_issuer = "https://other".into();
        assert_eq!(
            open(&r, &other_issuer, 1, &sealed),
            Err(SealError::Integrity)
        );
        // Field boundaries are unambiguous.
        let mut shifted = owner("alice");
        shifted.user_issuer = "https://idpalice".into();
        shifted.user_id = String::new();
        assert_eq!(open(&r, &shifted, 1, &sealed), Err(SealError::Integrity));
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_fails() {
        let r = ring(1, &[]);
        let sealed = seal(&r, &owner("alice"), 1, b"token-a").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(
                open(&r, &owner("alice"), 1, &bad).is_err(),
                "flip at {i} opened"
            );
        }
        for n in 0..sealed.len() {
            assert!(
                open(&r, &owner("alice"), 1, &sealed[..n]).is_err(),
                "truncation to {n} opened"
            );
        }
    }

    #[test]
    fn an_older_version_replayed_into_a_rewritten_row_does_not_open() {
        let r = ring(1, &[]);
        let old = seal(&r, &owner("alice"), 1, b"token-old").unwrap();
        assert_eq!(
            open(&r, &owner("alice"), 2, &old),
            Err(SealError::Integrity)
        );
    }

    #[test]
    fn previous_keys_open_and_reseal_moves_to_the_current_key() {
        let old = ring(1, &[]);
        let sealed = seal(&old, &owner("alice"), 1, b"token-a").unwrap();
        let rotated = ring(2, &[1]);
        assert_eq!(
            open(&rotated, &owner("alice"), 1, &sealed).unwrap(),
            b"token-a"
        );
        let resealed = reseal(&rotated, &owner("alice"), 1, &sealed).unwrap();
        assert_eq!(sealed_by(&resealed).unwrap(), rotated.current.id);
        let only_new = ring(2, &[]);
        assert_eq!(
            open(&only_new, &owner("alice"), 1, &resealed).unwrap(),
            b"token-a"
        );
        assert_eq!(
            open(&only_new, &owner("alice"), 1, &sealed),
            Err(SealError::UnknownKey)
        );
    }

    #[test]
    fn a_different_key_with_a_forged_id_fails() {
        let sealed = seal(&ring(1, &[]), &owner("alice"), 1, b"token-a").unwrap();
        // Same id text would require the same key bytes; a new key has a new id.
        assert_eq!(
            open(&ring(3, &[]), &owner("alice"), 1, &sealed),
            Err(SealError::UnknownKey)
        );
    }
}
