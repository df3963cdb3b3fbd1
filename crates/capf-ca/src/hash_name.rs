//! The OpenSSL subject hash (`openssl x509 -hash`) and `<hash>.0` file names.

use der::asn1::{Any, SetOfVec};
use der::{Encode, Tag, Tagged};
use sha1::{Digest, Sha1};
use x509_cert::Certificate;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::Name;

use crate::error::{CaError, Result};
use crate::names::string_value;

/// OpenSSL's canonical form of a string value (`asn1_string_canon`): leading
/// and trailing whitespace dropped, internal runs of whitespace collapsed to
/// one space, ASCII upper case lowered.
fn canonical_text(text: &str) -> String {
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let bytes = text.as_bytes();
    let start = bytes
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| !is_space(b))
        .map_or(start, |p| p + 1);
    let mut out = Vec::with_capacity(end.saturating_sub(start));
    let mut in_space = false;
    for &b in &bytes[start..end] {
        if is_space(b) {
            if !in_space {
                out.push(b' ');
            }
            in_space = true;
        } else {
            out.push(b.to_ascii_lowercase());
            in_space = false;
        }
    }
    // Only ASCII bytes were changed, so the result is still UTF-8.
    String::from_utf8_lossy(&out).into_owned()
}

fn canonical_value(value: &Any) -> Result<Any> {
    let canonicalised = matches!(
        value.tag(),
        Tag::Utf8String
            | Tag::PrintableString
            | Tag::Ia5String
            | Tag::VisibleString
            | Tag::TeletexString
            | Tag::BmpString
    );
    match string_value(value) {
        Some(text) if canonicalised => {
            Any::new(Tag::Utf8String, canonical_text(&text).into_bytes())
                .map_err(CaError::der("canonical name"))
        }
        _ => Ok(value.clone()),
    }
}

/// OpenSSL's canonical encoding of a name (`x509_name_canon`): every RDN SET
/// re-encoded with canonical UTF8String values, concatenated, without the
/// outer SEQUENCE header.
fn canonical_encoding(name: &Name) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for rdn in name.iter_rdn() {
        let mut atvs = Vec::new();
        for atv in rdn.iter() {
            atvs.push(AttributeTypeAndValue {
                oid: atv.oid,
                value: canonical_value(&atv.value)?,
            });
        }
        // SetOfVec sorts its elements by DER encoding, as OpenSSL does.
        let set = SetOfVec::try_from(atvs).map_err(CaError::der("canonical name"))?;
        set.encode_to_vec(&mut out)
            .map_err(CaError::der("canonical name"))?;
    }
    Ok(out)
}

/// The subject hash of a name, as `X509_NAME_hash_ex` computes it.
pub fn openssl_name_hash(name: &Name) -> Result<u32> {
    let digest = Sha1::digest(canonical_encoding(name)?);
    Ok(u32::from_le_bytes([
        digest[0], digest[1], digest[2], digest[3],
    ]))
}

/// The subject hash of a certificate, exactly as `openssl x509 -hash -noout` prints it.
pub fn openssl_subject_hash(cert_der: &[u8]) -> Result<u32> {
    let cert = <Certificate as der::Decode>::from_der(cert_der).map_err(|source| {
        CaError::CertificateParse {
            what: "certificate".into(),
            source,
        }
    })?;
    openssl_name_hash(cert.tbs_certificate().subject())
}

/// The file name OpenSSL's hashed certificate directories use: `<8 lower-case hex>.0`.
pub fn hashed_file_name(cert_der: &[u8]) -> Result<String> {
    Ok(format!("{:08x}.0", openssl_subject_hash(cert_der)?))
}

#[cfg(test)]
mod tests {
    use super::canonical_text;

    #[test]
    fn canonical_text_like_openssl() {
        assert_eq!(canonical_text("  Hello   World \t"), "hello world");
        assert_eq!(canonical_text("CAPF"), "capf");
        assert_eq!(canonical_text("   "), "");
        assert_eq!(canonical_text("A\t\nB"), "a b");
        assert_eq!(canonical_text("Ünïcode X"), "Ünïcode x");
    }
}
