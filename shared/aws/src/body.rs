//! Item bodies: the JSON of what an item holds, stored as a `B` attribute compressed with
//! LZ4 against a fixed dictionary.
//!
//! Why: DynamoDB bills a transactional write 2 units per started KB of each item. A session
//! or event body is 1.5–1.7 KB of JSON whose field names and fixed values repeat in every
//! item; against a dictionary of that shape LZ4 keeps about a quarter of it (a fixture
//! session: 1,521 → under 380 B), so each item of a create fits in one KB (docs/PERFORMANCE.md,
//! "write units per create"). LZ4 rather than deflate or zstd: a few microseconds per body
//! in pure Rust, less than the JSON escaping and request hashing the smaller request saves.
//!
//! Format: one version byte ([`FORMAT`]), the JSON's length (u32, little endian), the LZ4
//! block. Bodies written before compression are `S` attributes and are still read.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue as AV;

/// The dictionary every stored body of [`FORMAT`] was compressed against. Never edit it:
/// stored items depend on its exact bytes (a test pins its digest). A better dictionary
/// is a new file under a new format byte, with this one kept for reading.
const DICTIONARY: &[u8] = include_bytes!("body_dictionary.txt");

const FORMAT: u8 = 1;
const HEADER: usize = 5;

/// No body of ours comes near this (DynamoDB items are at most 400 KB, our JSON bodies a
/// few KB); a stated length above it is a corrupt item, not an allocation to attempt.
const MAX_BODY: usize = 1 << 20;

/// `json` as a stored body attribute.
pub(crate) fn encode(json: &[u8]) -> AV {
    let mut out = vec![0u8; HEADER + lz4_flex::block::get_maximum_output_size(json.len())];
    out[0] = FORMAT;
    // Bodies are serialised from our own values, far below 4 GiB.
    out[1..HEADER].copy_from_slice(&(json.len() as u32).to_le_bytes());
    let written = lz4_flex::block::compress_into_with_dict(json, &mut out[HEADER..], DICTIONARY)
        .expect("the output is sized by get_maximum_output_size");
    out.truncate(HEADER + written);
    AV::B(Blob::new(out))
}

/// The JSON of a stored body attribute: a compressed `B`, or an `S` written before bodies
/// were compressed.
pub(crate) fn decode(value: &AV) -> Result<Vec<u8>, String> {
    match value {
        AV::B(blob) => decompress(blob.as_ref()),
        AV::S(text) => Ok(text.clone().into_bytes()),
        _ => Err("body is neither B nor S".into()),
    }
}

/// The JSON of a compressed body's bytes.
pub(crate) fn decompress(stored: &[u8]) -> Result<Vec<u8>, String> {
    let (&format, rest) = stored.split_first().ok_or("empty body")?;
    if format != FORMAT {
        return Err(format!("body of unknown format {format}"));
    }
    let (len, block) = rest.split_first_chunk::<4>().ok_or("body shorter than its header")?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > MAX_BODY {
        return Err(format!("body states {len} bytes, more than any body holds"));
    }
    let mut json = vec![0u8; len];
    let got = lz4_flex::block::decompress_into_with_dict(block, &mut json, DICTIONARY).map_err(|e| format!("corrupt body: {e}"))?;
    if got != len {
        return Err(format!("corrupt body: {got} bytes where {len} were stated"));
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_the_one_stored_bodies_were_written_with() {
        assert_eq!(
            paysession_app::ids::sha256_hex(DICTIONARY),
            "b2ea7996394034266eaabbd2c33c0ce882a0f98139238410ed4bc487dd732a78",
            "stored bodies cannot be read with another dictionary: add a format instead"
        );
    }

    #[test]
    fn a_body_reads_back_as_written_and_a_session_shrinks_to_a_quarter() {
        let json = br#"{"id":"ps_01m913v5ywbzee2gg0pkbcxkq46an8","merchant_id":"mer_01a2423d97c0944805cf368c582bcfb9","status":"open","session_type":"one_time","amount":1050,"currency":"EUR","customer_id":"cus_fx","reference":"fx-1","due_date":null,"purpose":null,"items":[{"name":"Rent","quantity":1,"unit_amount":1050,"type":"property"}],"recipients":[],"allowed_domains":[],"expires_at":"2026-12-04T18:22:42.556175551Z","expiration_mode":"loose","payment_type":"single","payment_methods":["card","ewallet","virtual_account","qr","bank_transfer"],"mode":"redirect","auto_confirm":true,"save_payment_method":"never","show_saved_payment_methods":false,"mandate":null,"mandate_id":null,"statement_descriptor":null,"success_url":null,"cancel_url":null,"state":null,"locale":"en","metadata":{},"url":"https://pay.example/pay/mer_01a2423d97c0944805cf368c582bcfb9.ps_01m913v5ywbzee2gg0pkbcxkq46an8.agR7iAi4n89FN3RQqY5Bf_fzl7JHUQYOJgVEGLsDEqY","payment_request_id":null,"payments":[],"payment_method_id":null,"attempts_remaining":5,"cancellation_reason":null,"created_at":"2026-12-04T18:07:42.556259560Z","updated_at":"2026-12-04T18:07:42.556259560Z","version":1,"page_token_hash":"2dc712aa75a359bbb1f8eecb2ce3078574593d8abdbbc3e19abbb25dfe8af305","instructions":{"virtual_account":{"bank_name":"Sandbox Bank","account_number":"8808597915154438"},"qr":{"payload_id":"qr_mer_01a2423d97c0944805cf368c582bcfb9.ps_01m913v5ywbzee2gg0pkbcxkq46an8","payload":"PAYSESSION|qr_mer_01a2423d97c0944805cf368c582bcfb9.ps_01m913v5ywbzee2gg0pkbcxkq46an8|1050|EUR"}}}"#;
        let AV::B(stored) = encode(json) else { panic!("a body is stored as B") };
        assert!(stored.as_ref().len() * 4 < json.len(), "{} of {} bytes", stored.as_ref().len(), json.len());
        assert_eq!(decode(&AV::B(stored)).unwrap(), json);
        for odd in [&b""[..], b"{}", "é\u{0}\"\\".as_bytes(), &[b'x'; 70_000]] {
            assert_eq!(decode(&encode(odd)).unwrap(), odd);
        }
    }

    #[test]
    fn a_body_written_before_compression_still_reads() {
        assert_eq!(decode(&AV::S(r#"{"a":1}"#.into())).unwrap(), br#"{"a":1}"#);
        assert!(decode(&AV::N("1".into())).is_err());
    }

    #[test]
    fn a_corrupt_body_is_an_error_not_a_panic_or_a_huge_allocation() {
        let AV::B(good) = encode(br#"{"id":"ps_1","status":"open","amount":100}"#) else { unreachable!() };
        let good = good.into_inner();
        assert!(decompress(&[]).unwrap_err().contains("empty"));
        assert!(decompress(&[9, 0, 0, 0, 0]).unwrap_err().contains("unknown format"));
        assert!(decompress(&[FORMAT, 1, 0]).unwrap_err().contains("header"));
        assert!(decompress(&[FORMAT, 0xff, 0xff, 0xff, 0xff, 0]).unwrap_err().contains("more than"));
        let mut longer = good.clone();
        longer[1] += 1;
        assert!(decompress(&longer).is_err());
        assert!(decompress(&good[..good.len() - 3]).is_err());
        // Every single-byte corruption of the block either fails or decodes to some bytes.
        for i in HEADER..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                let _ = decompress(&bad);
            }
        }
    }
}
