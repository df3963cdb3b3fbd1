//! A readable value for each element: names for codes, certificates parsed
//! with capf-ca, key sizes, redacted passwords.

use capf_ca::{CaCertificate, KeySpec, PublicKey};
use capf_wire::{
    AuthType, CertificateType, Curve, Element, HashId, KeyType, Reason, Sha2SignedData, SudiData,
    Tag, WrappedCertificate,
};
use serde_json::{Value, json};

use crate::time_text;

/// One element, ready to print.
pub(super) struct Rendered {
    /// The tag's name, or `TAG_<n>` for an unknown one.
    pub(super) name: String,
    pub(super) tag: u8,
    pub(super) length: usize,
    /// The value in one line.
    pub(super) summary: String,
    /// More lines (label, value), e.g. a certificate's fields.
    pub(super) details: Vec<(String, String)>,
    /// Typed values for JSON.
    pub(super) fields: Vec<(&'static str, Value)>,
}

impl Rendered {
    fn new(element: &Element, summary: String) -> Self {
        Rendered {
            name: element
                .tag
                .wire_name()
                .map_or_else(|| format!("TAG_{}", element.tag.to_u8()), str::to_owned),
            tag: element.tag.to_u8(),
            length: element.value.len(),
            summary,
            details: Vec::new(),
            fields: Vec::new(),
        }
    }

    fn field(mut self, key: &'static str, value: Value) -> Self {
        self.fields.push((key, value));
        self
    }
}

/// `name (code)` for a one-byte code of an open enum.
fn named_code(value: &[u8], name: impl Fn(u8) -> Option<&'static str>) -> Option<String> {
    match value {
        [code] => {
            let n = name(*code);
            Some(match n {
                Some(n) => format!("{n} ({code})"),
                None => format!("unknown ({code})"),
            })
        }
        _ => None,
    }
}

fn invalid(element: &Element, why: &str) -> Rendered {
    Rendered::new(
        element,
        format!("<invalid: {why}> {}", hex::encode(&element.value)),
    )
    .field("hex", json!(hex::encode(&element.value)))
    .field("error", json!(why))
}

fn text(value: &[u8]) -> Option<String> {
    let trimmed = value.strip_suffix(&[0]).unwrap_or(value);
    std::str::from_utf8(trimmed).ok().map(str::to_owned)
}

fn key_text(spec: KeySpec) -> String {
    match spec {
        KeySpec::Rsa { bits } => format!("RSA {bits}"),
        KeySpec::Ec(curve) => format!("EC {curve}"),
    }
}

/// Renders `element` (found at stream offset `offset`).
pub(super) fn render(element: &Element, offset: u64, show_secrets: bool) -> Rendered {
    let value: &[u8] = &element.value;
    match element.tag {
        Tag::Reason => match value {
            [code] => {
                let reason = Reason::from(*code);
                let name = reason.wire_name().unwrap_or("unknown");
                Rendered::new(element, format!("{code} ({name})"))
                    .field("code", json!(code))
                    .field("meaning", json!(name))
            }
            _ => invalid(element, "REASON is one byte"),
        },
        Tag::Version | Tag::RetryDelay => match number(value) {
            Some(n) => Rendered::new(element, n.to_string()).field("number", json!(n)),
            None => invalid(element, "not a 1, 2 or 4-byte number"),
        },
        Tag::KeySize => match value {
            [hi, lo] => {
                let bits = u16::from_be_bytes([*hi, *lo]);
                Rendered::new(element, bits.to_string()).field("bits", json!(bits))
            }
            _ => invalid(element, "KEY_SIZE is two bytes"),
        },
        Tag::CertificateType => code_element(element, |c| CertificateType::from(c).wire_name()),
        Tag::KeyType => code_element(element, |c| KeyType::from(c).wire_name()),
        Tag::Curve => code_element(element, |c| Curve::from(c).wire_name()),
        Tag::AuthType => code_element(element, |c| AuthType::from(c).wire_name()),
        Tag::DigestType => code_element(element, |c| HashId::from(c).wire_name()),
        Tag::DeviceName | Tag::ReasonInfo => match text(value) {
            Some(t) => Rendered::new(element, t.clone()).field("text", json!(t)),
            None => invalid(element, "not UTF-8 text"),
        },
        Tag::Password => {
            let secret = value.strip_suffix(&[0]).unwrap_or(value);
            if secret.is_empty() {
                Rendered::new(element, "<empty>".into()).field("empty", json!(true))
            } else if show_secrets {
                let shown = String::from_utf8_lossy(secret).into_owned();
                Rendered::new(element, format!("{shown:?}")).field("text", json!(shown))
            } else {
                Rendered::new(element, format!("<redacted, {} bytes>", secret.len()))
                    .field("redacted", json!(true))
                    .field("bytes", json!(secret.len()))
            }
        }
        Tag::SignedData => Rendered::new(element, format!("{}-byte signature", value.len()))
            .field("signature_bytes", json!(value.len())),
        Tag::PublicKey => match PublicKey::from_spki_der(value) {
            Ok(key) => {
                let k = key_text(key.spec());
                Rendered::new(element, format!("{k} ({}-byte SPKI)", value.len()))
                    .field("key", json!(k))
                    .field("der_bytes", json!(value.len()))
            }
            Err(e) => invalid(element, &e.to_string()),
        },
        Tag::Certificate => match WrappedCertificate::decode(&element.value, offset) {
            Ok(wrapped) => {
                let t = wrapped.certificate_type;
                let kind = t.wire_name().unwrap_or("unknown type");
                let summary = format!("{kind} ({}), {}-byte DER", t.to_u8(), wrapped.der.len());
                let mut r = Rendered::new(element, summary)
                    .field("certificate_type", json!(t.to_u8()))
                    .field("der_bytes", json!(wrapped.der.len()));
                add_certificate(&mut r, &wrapped.der, "");
                r
            }
            Err(e) => invalid(element, &e.to_string()),
        },
        Tag::SudiData => match SudiData::decode(&element.value, offset) {
            Ok(sudi) => {
                let summary = format!(
                    "certificate {} bytes, SHA-1 signature {} bytes, SHA-512 signature {} bytes",
                    sudi.certificate.len(),
                    sudi.sha1_signature.len(),
                    sudi.sha512_signature.len()
                );
                let mut r = Rendered::new(element, summary)
                    .field("certificate_bytes", json!(sudi.certificate.len()))
                    .field("sha1_signature_bytes", json!(sudi.sha1_signature.len()))
                    .field("sha512_signature_bytes", json!(sudi.sha512_signature.len()));
                add_certificate(&mut r, &sudi.certificate, "SUDI ");
                r
            }
            Err(e) => invalid(element, &e.to_string()),
        },
        Tag::Sha2SignedData => match Sha2SignedData::decode(&element.value, offset) {
            Ok(data) => {
                let hash = data.hash.wire_name().unwrap_or("unknown hash");
                Rendered::new(
                    element,
                    format!(
                        "{hash} (hash {}), {}-byte signature",
                        data.hash.to_u8(),
                        data.signature.len()
                    ),
                )
                .field("hash", json!(data.hash.to_u8()))
                .field("signature_bytes", json!(data.signature.len()))
            }
            Err(e) => invalid(element, &e.to_string()),
        },
        _ => Rendered::new(element, hex_summary(value)).field("hex", json!(hex::encode(value))),
    }
}

fn hex_summary(value: &[u8]) -> String {
    if value.is_empty() {
        "<empty>".into()
    } else {
        hex::encode(value)
    }
}

fn code_element(element: &Element, name: impl Fn(u8) -> Option<&'static str>) -> Rendered {
    match named_code(&element.value, &name) {
        Some(summary) => {
            let code = element.value.first().copied().unwrap_or_default();
            let n = name(code);
            Rendered::new(element, summary)
                .field("code", json!(code))
                .field("meaning", json!(n))
        }
        None => invalid(element, "expected one byte"),
    }
}

fn number(value: &[u8]) -> Option<u32> {
    match value {
        [a] => Some(u32::from(*a)),
        [a, b] => Some(u32::from(u16::from_be_bytes([*a, *b]))),
        [a, b, c, d] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// Adds a certificate's subject, issuer, serial, validity and key.
fn add_certificate(r: &mut Rendered, der: &[u8], prefix: &str) {
    match CaCertificate::from_der(der, "certificate") {
        Ok(c) => {
            let key = c.public_key().map(|k| key_text(k.spec())).ok();
            let not_before = time_text::format(c.not_before());
            let not_after = time_text::format(c.not_after());
            r.details.extend([
                (format!("{prefix}subject"), c.subject()),
                (format!("{prefix}issuer"), c.issuer()),
                (format!("{prefix}serial"), c.serial_hex()),
                (
                    format!("{prefix}validity"),
                    format!("{not_before} to {not_after}"),
                ),
            ]);
            if let Some(k) = &key {
                r.details.push((format!("{prefix}key"), k.clone()));
            }
            r.fields.push((
                "certificate",
                json!({
                    "subject": c.subject(),
                    "issuer": c.issuer(),
                    "serial": c.serial_hex(),
                    "not_before": not_before,
                    "not_after": not_after,
                    "key": key,
                }),
            ));
        }
        Err(e) => {
            r.details
                .push((format!("{prefix}certificate"), format!("<not X.509: {e}>")));
            r.fields
                .push(("certificate", json!({ "error": e.to_string() })));
        }
    }
}
