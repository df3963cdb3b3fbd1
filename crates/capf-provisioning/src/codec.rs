//! The raw element layer: header elements and trust-list records exactly as
//! they lie in a file, unknown tags and element order included.
//!
//! ```text
//! element    tag (u8) | length (u16, big-endian) | value (length bytes)
//! padding    0x0D                       (tag 13: one bare byte, header only)
//! container  tag (u8) | length (u16)    (3, 7, 9, 16, 17, 21: the length counts
//!                                        the elements that follow; a reader
//!                                        steps into them)
//! ```

use crate::error::{Place, ProvisioningError, Result};
use crate::tags::{HeaderTag, RecordTag};

/// Length of an element's tag and length.
pub const ELEMENT_HEADER_LEN: usize = 3;
/// Length of the first two header elements (version and header length).
pub const FIXED_HEADER_LEN: usize = 10;
/// The padding byte (header tag 13).
pub const PADDING_BYTE: u8 = 0x0D;

/// What a header item is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HeaderItem {
    /// An element with a value.
    Value(Vec<u8>),
    /// A container: only its tag and declared length, kept as read (readers
    /// do not check it); the elements it holds follow as their own items.
    Container {
        /// The declared length.
        declared: u16,
    },
    /// The bare padding byte 0x0D.
    Padding,
}

/// One header item and where it starts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeaderElement {
    /// Offset of its first byte from the start of the file.
    pub offset: usize,
    /// Its tag.
    pub tag: HeaderTag,
    /// Value, container or padding.
    pub item: HeaderItem,
}

impl HeaderElement {
    /// The value bytes (empty for containers and padding).
    pub fn value(&self) -> &[u8] {
        match &self.item {
            HeaderItem::Value(v) => v,
            HeaderItem::Container { .. } | HeaderItem::Padding => &[],
        }
    }

    /// How many bytes this item takes in the file.
    pub fn encoded_len(&self) -> usize {
        match &self.item {
            HeaderItem::Value(v) => ELEMENT_HEADER_LEN + v.len(),
            HeaderItem::Container { .. } => ELEMENT_HEADER_LEN,
            HeaderItem::Padding => 1,
        }
    }
}

/// A header as it lies in the file: every item in order, and the length
/// that element 2 declares.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawHeader {
    /// The declared header length (element 2) = offset of the first record
    /// or of the payload.
    pub length: u16,
    /// Every item, elements 1 and 2 included, in file order.
    pub elements: Vec<HeaderElement>,
}

impl RawHeader {
    /// Reads the header at the start of `file`.
    ///
    /// Checks what every reader relies on: element 1 then element 2 (each
    /// 2 bytes) first, a header length within the file, every element inside
    /// the header. Tags are not checked (unknown ones are kept) and neither
    /// are container lengths (as the reference tools).
    pub fn parse(file: &[u8]) -> Result<RawHeader> {
        if file.len() < FIXED_HEADER_LEN {
            return Err(ProvisioningError::Truncated {
                offset: 0,
                what: "header",
                needed: FIXED_HEADER_LEN - file.len(),
            });
        }
        let mut elements = Vec::new();
        for (offset, expected) in [(0usize, HeaderTag::Version), (5, HeaderTag::Length)] {
            let found = HeaderTag::from(file[offset]);
            if found != expected {
                return Err(ProvisioningError::BadHeaderStart {
                    offset,
                    expected,
                    found,
                });
            }
            let len = usize::from(u16::from_be_bytes([file[offset + 1], file[offset + 2]]));
            if len != 2 {
                return Err(ProvisioningError::BadHeaderElementLength {
                    offset,
                    tag: expected,
                    expected: 2,
                    found: len,
                });
            }
            elements.push(HeaderElement {
                offset,
                tag: expected,
                item: HeaderItem::Value(file[offset + 3..offset + 5].to_vec()),
            });
        }
        let length = u16::from_be_bytes([file[8], file[9]]);
        let end = usize::from(length);
        if end < FIXED_HEADER_LEN || end > file.len() {
            return Err(ProvisioningError::BadHeaderLength {
                declared: length,
                file_len: file.len(),
            });
        }
        let mut i = FIXED_HEADER_LEN;
        while i < end {
            let tag = HeaderTag::from(file[i]);
            if tag == HeaderTag::Padding {
                elements.push(HeaderElement {
                    offset: i,
                    tag,
                    item: HeaderItem::Padding,
                });
                i += 1;
                continue;
            }
            if end - i < ELEMENT_HEADER_LEN {
                return Err(ProvisioningError::TruncatedElementHeader {
                    offset: i,
                    place: Place::Header,
                    remaining: end - i,
                });
            }
            let declared = u16::from_be_bytes([file[i + 1], file[i + 2]]);
            if tag.is_container() {
                elements.push(HeaderElement {
                    offset: i,
                    tag,
                    item: HeaderItem::Container { declared },
                });
                i += ELEMENT_HEADER_LEN;
                continue;
            }
            let len = usize::from(declared);
            let available = end - i - ELEMENT_HEADER_LEN;
            if len > available {
                return Err(ProvisioningError::HeaderElementOverrun {
                    offset: i,
                    tag,
                    declared: len,
                    available,
                });
            }
            let start = i + ELEMENT_HEADER_LEN;
            elements.push(HeaderElement {
                offset: i,
                tag,
                item: HeaderItem::Value(file[start..start + len].to_vec()),
            });
            i = start + len;
        }
        Ok(RawHeader { length, elements })
    }

    /// The header's bytes, exactly as parsed (or as assembled).
    ///
    /// Fails if a value is longer than 65535 bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::from(self.length));
        for e in &self.elements {
            match &e.item {
                HeaderItem::Value(v) => put_element(&mut out, e.tag.code(), v, e.tag.name())?,
                HeaderItem::Container { declared } => {
                    out.push(e.tag.code());
                    out.extend_from_slice(&declared.to_be_bytes());
                }
                HeaderItem::Padding => out.push(e.tag.code()),
            }
        }
        Ok(out)
    }

    /// The first element with this tag.
    pub fn element(&self, tag: HeaderTag) -> Option<&HeaderElement> {
        self.elements.iter().find(|e| e.tag == tag)
    }
}

/// One element of a trust-list record and where it starts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RecordElement {
    /// Offset of its tag byte from the start of the file.
    pub offset: usize,
    /// Its tag.
    pub tag: RecordTag,
    /// Its value.
    pub value: Vec<u8>,
}

/// A trust-list record as it lies in the file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawRecord {
    /// Offset of the record (its length element) from the start of the file.
    pub offset: usize,
    /// The declared record length, its length element included.
    pub length: u16,
    /// The elements after the length element, in file order.
    pub elements: Vec<RecordElement>,
}

impl RawRecord {
    /// Reads every record from `start` (the header length) to the end of
    /// `file`.
    ///
    /// Each record must start with its length element (tag 1, 2 bytes), lie
    /// inside the file, and be filled exactly by its elements.
    pub fn parse_all(file: &[u8], start: usize) -> Result<Vec<RawRecord>> {
        let mut records = Vec::new();
        let mut i = start;
        while i < file.len() {
            let index = records.len();
            let Some(&[tag, hi, lo, l1, l2]) = file[i..].first_chunk::<5>() else {
                return Err(ProvisioningError::Truncated {
                    offset: i,
                    what: "record length element",
                    needed: 5 - (file.len() - i),
                });
            };
            let tag = RecordTag::from(tag);
            let elen = u16::from_be_bytes([hi, lo]);
            if tag != RecordTag::RecordLength || elen != 2 {
                return Err(ProvisioningError::BadRecordStart {
                    offset: i,
                    record: index,
                    found: tag,
                    length: elen,
                });
            }
            let length = u16::from_be_bytes([l1, l2]);
            let rlen = usize::from(length);
            if rlen < 5 || rlen > file.len() - i {
                return Err(ProvisioningError::BadRecordLength {
                    offset: i,
                    record: index,
                    declared: length,
                    available: file.len() - i,
                });
            }
            let end = i + rlen;
            let mut elements = Vec::new();
            let mut j = i + 5;
            while j < end {
                if end - j < ELEMENT_HEADER_LEN {
                    return Err(ProvisioningError::TruncatedElementHeader {
                        offset: j,
                        place: Place::Record(index),
                        remaining: end - j,
                    });
                }
                let tag = RecordTag::from(file[j]);
                let len = usize::from(u16::from_be_bytes([file[j + 1], file[j + 2]]));
                let available = end - j - ELEMENT_HEADER_LEN;
                if len > available {
                    return Err(ProvisioningError::RecordElementOverrun {
                        offset: j,
                        record: index,
                        tag,
                        declared: len,
                        available,
                    });
                }
                let v = j + ELEMENT_HEADER_LEN;
                elements.push(RecordElement {
                    offset: j,
                    tag,
                    value: file[v..v + len].to_vec(),
                });
                j = v + len;
            }
            records.push(RawRecord {
                offset: i,
                length,
                elements,
            });
            i = end;
        }
        Ok(records)
    }

    /// The record's bytes: its length element (with the declared length) and
    /// its elements in order.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::from(self.length));
        put_element(
            &mut out,
            RecordTag::RecordLength.code(),
            &self.length.to_be_bytes(),
            RecordTag::RecordLength.name(),
        )?;
        for e in &self.elements {
            put_element(&mut out, e.tag.code(), &e.value, e.tag.name())?;
        }
        Ok(out)
    }
}

/// Appends `tag | len | value`, failing if the value is longer than 65535.
pub(crate) fn put_element(
    out: &mut Vec<u8>,
    tag: u8,
    value: &[u8],
    name: Option<&str>,
) -> Result<()> {
    let len = u16::try_from(value.len()).map_err(|_| ProvisioningError::TooLong {
        what: format!(
            "element {}",
            name.map_or_else(|| tag.to_string(), str::to_owned)
        ),
        length: value.len(),
    })?;
    out.push(tag);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
    Ok(())
}

/// A text value as written: UTF-8 and one NUL.
pub(crate) fn nul_terminated(text: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(text.len() + 1);
    v.extend_from_slice(text.as_bytes());
    v.push(0);
    v
}

/// Reads a NUL-terminated UTF-8 value (the NUL is the last byte; no other).
pub(crate) fn read_text(value: &[u8]) -> Option<String> {
    let (&last, text) = value.split_last()?;
    if last != 0 || text.contains(&0) {
        return None;
    }
    String::from_utf8(text.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn header_with_container_and_padding_round_trips() {
        // version 1.0, length 24, container 3 {4 "A"}, timestamp, pad pad.
        let mut f = vec![1, 0, 2, 1, 0, 2, 0, 2, 0, 0];
        f.extend_from_slice(&[3, 0, 5, 4, 0, 2, b'A', 0]);
        f.extend_from_slice(&[15, 0, 4, 0, 0, 0, 1]);
        f.extend_from_slice(&[13, 13]);
        let n = u16::try_from(f.len()).unwrap();
        f[8..10].copy_from_slice(&n.to_be_bytes());
        f.extend_from_slice(b"payload");
        let h = RawHeader::parse(&f).unwrap();
        assert_eq!(usize::from(h.length), f.len() - 7);
        assert_eq!(h.elements.len(), 7);
        assert_eq!(h.encode().unwrap(), f[..usize::from(h.length)]);
        assert_eq!(
            read_text(h.element(HeaderTag::SignerName).unwrap().value()).unwrap(),
            "A"
        );
    }

    #[test]
    fn errors_say_where() {
        let mut f = vec![1, 0, 2, 1, 0, 2, 0, 2, 0, 16, 14, 0, 9, 0, 0, 0];
        let e = RawHeader::parse(&f).unwrap_err();
        assert!(
            matches!(
                e,
                ProvisioningError::HeaderElementOverrun {
                    offset: 10,
                    tag: HeaderTag::FileName,
                    declared: 9,
                    available: 3
                }
            ),
            "{e}"
        );
        assert_eq!(e.offset(), Some(10));
        f[0] = 2;
        let e = RawHeader::parse(&f).unwrap_err();
        assert!(
            matches!(e, ProvisioningError::BadHeaderStart { offset: 0, .. }),
            "{e}"
        );
        let e = RawRecord::parse_all(&[1, 0, 2, 0, 9, 3, 0, 9, 0], 0).unwrap_err();
        assert!(
            matches!(
                e,
                ProvisioningError::RecordElementOverrun {
                    offset: 5,
                    record: 0,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("record 0"), "{e}");
    }
}
