//! Identifiers and random tokens. IDs are prefixed and opaque; randomness comes from the OS.

use base64::Engine;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf).expect("the OS random source is available");
    buf
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `prefix_` + 128 random bits in hex, e.g. `ps_3f2a…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", hex(&random_bytes::<16>()))
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
    let h = hex(&b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
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
    }
}
