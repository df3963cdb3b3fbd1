//! Distinguished names: display, attribute access, and the LSC subject.

use der::asn1::{Any, SetOfVec};
use der::{Decode, Encode, Tag, Tagged};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

use crate::error::{CaError, Result};
use crate::oids;

/// Decodes a DirectoryString-like attribute value to text. `None` for
/// non-string types.
pub(crate) fn string_value(value: &Any) -> Option<String> {
    let bytes = value.value();
    match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::VisibleString
        | Tag::NumericString => String::from_utf8(bytes.to_vec()).ok(),
        // OpenSSL reads T61String as Latin-1.
        Tag::TeletexString => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

fn short_name(oid: &der::oid::ObjectIdentifier) -> Option<&'static str> {
    Some(match *oid {
        o if o == oids::COMMON_NAME => "CN",
        o if o == oids::COUNTRY => "C",
        o if o == oids::LOCALITY => "L",
        o if o == oids::STATE => "ST",
        o if o == oids::ORGANIZATION => "O",
        o if o == oids::ORGANIZATIONAL_UNIT => "OU",
        _ => return None,
    })
}

/// Formats a name in certificate order, like `openssl -nameopt oneline`
/// without spaces around `=`: `CN=SEP001122334455, O=CAPF, OU=CAPF`.
pub(crate) fn display_name(name: &Name) -> String {
    let mut parts = Vec::new();
    for atv in name.iter() {
        let key = short_name(&atv.oid)
            .map(str::to_owned)
            .unwrap_or_else(|| atv.oid.to_string());
        let value = string_value(&atv.value).unwrap_or_else(|| {
            let mut s = String::from("#");
            for b in atv.value.value() {
                s.push_str(&format!("{b:02x}"));
            }
            s
        });
        parts.push(format!("{key}={value}"));
    }
    parts.join(", ")
}

/// The first common name of a name, as text.
pub(crate) fn common_name(name: &Name) -> Option<String> {
    name.iter()
        .find(|atv| atv.oid == oids::COMMON_NAME)
        .and_then(|atv| string_value(&atv.value))
}

fn utf8_atv(
    oid: der::oid::ObjectIdentifier,
    value: &str,
    field: &'static str,
) -> Result<AttributeTypeAndValue> {
    Ok(AttributeTypeAndValue {
        oid,
        value: Any::new(Tag::Utf8String, value.as_bytes()).map_err(CaError::der(field))?,
    })
}

fn single_rdn(
    atv: AttributeTypeAndValue,
    field: &'static str,
) -> Result<RelativeDistinguishedName> {
    let set = SetOfVec::try_from(vec![atv]).map_err(CaError::der(field))?;
    Ok(RelativeDistinguishedName::from(set))
}

fn to_name(rdns: Vec<RelativeDistinguishedName>, field: &'static str) -> Result<Name> {
    let seq = RdnSequence::from(rdns);
    Name::from_der(&seq.to_der().map_err(CaError::der(field))?).map_err(CaError::der(field))
}

/// Builds `CN=<cn>` followed by the given optional O and OU (UTF8String values).
pub(crate) fn simple_name(cn: &str, o: Option<&str>, ou: Option<&str>) -> Result<Name> {
    let mut rdns = vec![single_rdn(utf8_atv(oids::COMMON_NAME, cn, "CN")?, "CN")?];
    if let Some(o) = o {
        rdns.push(single_rdn(utf8_atv(oids::ORGANIZATION, o, "O")?, "O")?);
    }
    if let Some(ou) = ou {
        rdns.push(single_rdn(
            utf8_atv(oids::ORGANIZATIONAL_UNIT, ou, "OU")?,
            "OU",
        )?);
    }
    to_name(rdns, "subject")
}

/// The LSC subject: `CN=<device name>` followed by the O, OU, L, ST and C
/// attributes of the issuer's subject, in their order (as capfd does).
pub(crate) fn lsc_subject(device_name: &str, issuer_subject: &Name) -> Result<Name> {
    let mut rdns = vec![single_rdn(
        utf8_atv(oids::COMMON_NAME, device_name, "CN")?,
        "CN",
    )?];
    let copied = [
        oids::ORGANIZATION,
        oids::ORGANIZATIONAL_UNIT,
        oids::LOCALITY,
        oids::STATE,
        oids::COUNTRY,
    ];
    for rdn in issuer_subject.iter_rdn() {
        if rdn.iter().all(|atv| copied.contains(&atv.oid)) && !rdn.is_empty() {
            rdns.push(rdn.clone());
        }
    }
    to_name(rdns, "LSC subject")
}
