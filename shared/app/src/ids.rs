//! Identifiers and random tokens. IDs are prefixed and opaque; randomness comes from the OS.

use base64::Engine;

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf).expect("the OS random source is available");
    buf
}

/// `N` random bytes as lowercase hex (trace and span ids).
pub fn random_hex<const N: usize>() -> String {
    hex(&random_bytes::<N>())
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

// Not `format!("{b:02x}")` per byte: ids and request ids are made on every request, and
// the formatting machinery was most of their cost (perf of a local GET).
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
}

/// `prefix_` + 32 hex digits: the creation time in milliseconds since the epoch (48 bits),
/// then 80 random bits, e.g. `ps_019ae3f2a1c4…`. Ids name records, they guard nothing
/// (every secret is a token of its own), so they may be ordered: an id that grows with time
/// lands next to the last one in every B-tree keyed by it. With random ids each create
/// dirtied a leaf page of its own in three SQLite indexes (session id, event id, the
/// session's events), which the local writer read back and wrote to the WAL in full.
/// 80 random bits keep ids created in the same millisecond apart.
pub fn new_id(prefix: &str) -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut id = String::with_capacity(prefix.len() + 33);
    id.push_str(prefix);
    id.push('_');
    push_hex(&mut id, &millis.to_be_bytes()[2..]);
    push_hex(&mut id, &random_bytes::<10>());
    id
}

/// An id of something of session `session_id` (`pay_`, `re_`): it names its session, so a
/// read by id needs no index (`paysession_domain::session::child_id`); 64 random bits keep
/// a session's own children apart.
pub fn new_child_id(prefix: &str, session_id: &str) -> String {
    paysession_domain::session::child_id(prefix, session_id, &hex(&random_bytes::<8>()))
}

/// An event id naming its subject (`paysession_domain::event::subject_event_id`): the
/// DynamoDB store finds the event in its subject's partition, with no by-id index entry.
pub fn new_event_id(subject_id: &str) -> String {
    paysession_domain::event::subject_event_id(subject_id, &hex(&random_bytes::<8>()))
}

/// 256 random bits, URL-safe base64: hosted-page tokens and client secrets.
pub fn new_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// 256 random bits, e.g. a token signing key.
pub fn random_key() -> Vec<u8> {
    random_bytes::<32>().to_vec()
}

/// A UUID v4 string (request ids).
pub fn new_uuid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut id = String::with_capacity(36);
    for (i, group) in [&b[0..4], &b[4..6], &b[6..8], &b[8..10], &b[10..16]].into_iter().enumerate() {
        if i > 0 {
            id.push('-');
        }
        push_hex(&mut id, group);
    }
    id
}

/// Compares secrets in time independent of where they differ (CSRF tokens, proofs, codes).
pub fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SHA-256 in hex: fingerprints and lookup keys of tokens that must not be stored in clear.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let id = new_id("ps");
        assert!(id.starts_with("ps_") && id.len() == 35);
        assert_ne!(new_id("ps"), id);
        assert_eq!(new_token().len(), 43);
        let u = new_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        let groups: Vec<usize> = u.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(u.bytes().all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "RFC 4122 variant");
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn ids_grow_with_time_and_differ_within_a_millisecond() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let ids: Vec<String> = (0..1000).map(|_| new_id("evt")).collect();
        let millis = |id: &str| u64::from_str_radix(&id[4..16], 16).unwrap();
        assert!(millis(&ids[0]).abs_diff(now) < 60_000, "the prefix is the creation time: {}", ids[0]);
        assert!(ids.windows(2).all(|w| millis(&w[0]) <= millis(&w[1])), "ordered by time");
        let distinct: std::collections::HashSet<&str> = ids.iter().map(|id| &id[16..]).collect();
        assert_eq!(distinct.len(), ids.len(), "80 random bits apart");
        assert!(ids.iter().all(|id| id.len() == 36 && id[4..].bytes().all(|b| b.is_ascii_hexdigit())));
    }
}
