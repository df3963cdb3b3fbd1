//! Raw frames: the 8-byte header and the TLV elements, kept exactly as read.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{Command, Tag, WireError};

/// The protocol id that starts every CAPF frame.
pub const PROTOCOL_ID: u8 = 0x55;
/// Length of the frame header in bytes.
pub const HEADER_LEN: usize = 8;
/// Length of an element header (tag and length) in bytes.
pub const ELEMENT_HEADER_LEN: usize = 3;
/// The largest body a frame can declare.
pub const MAX_BODY_LEN: usize = u16::MAX as usize;

/// The fixed 8-byte header of a frame.
///
/// ```text
/// 0  u8   protocol id 0x55
/// 1  u8   command
/// 2  u32  session id, big-endian
/// 6  u16  body length, big-endian
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The command this frame carries.
    pub command: Command,
    /// The session id the server chose in AUTH_REQUEST.
    pub session_id: u32,
    /// Length of the body that follows, in bytes.
    pub body_len: u16,
}

impl Header {
    /// Reads a header from the first 8 bytes of `bytes`.
    ///
    /// Returns `Ok(None)` when fewer than 8 bytes are there. The protocol id
    /// is checked as soon as one byte is there.
    pub fn peek(bytes: &[u8]) -> Result<Option<Header>, WireError> {
        if let Some(&first) = bytes.first()
            && first != PROTOCOL_ID
        {
            return Err(WireError::BadProtocolId {
                offset: 0,
                found: first,
            });
        }
        let Some(h) = bytes.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        Ok(Some(Header {
            command: Command::from(h[1]),
            session_id: u32::from_be_bytes([h[2], h[3], h[4], h[5]]),
            body_len: u16::from_be_bytes([h[6], h[7]]),
        }))
    }

    /// Writes the header.
    pub fn encode(&self, dst: &mut impl BufMut) {
        dst.put_u8(PROTOCOL_ID);
        dst.put_u8(self.command.to_u8());
        dst.put_u32(self.session_id);
        dst.put_u16(self.body_len);
    }

    /// Whole frame length: header plus body.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + usize::from(self.body_len)
    }
}

/// One TLV element: tag, then a value of up to 65535 bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Element {
    /// The element's tag (possibly unknown).
    pub tag: Tag,
    /// The value bytes, exactly as read.
    pub value: Bytes,
}

impl Element {
    /// An element from a tag and value.
    pub fn new(tag: Tag, value: impl Into<Bytes>) -> Self {
        Element {
            tag,
            value: value.into(),
        }
    }

    /// Bytes this element takes in a body: header plus value.
    pub fn encoded_len(&self) -> usize {
        ELEMENT_HEADER_LEN + self.value.len()
    }
}

/// A frame as it travels: command, session id and the elements in the order
/// they came, unknown tags included.
///
/// Decoding then encoding a frame gives back exactly the bytes it was decoded
/// from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The command.
    pub command: Command,
    /// The session id.
    pub session_id: u32,
    /// The elements, in wire order.
    pub elements: Vec<Element>,
}

impl Frame {
    /// A frame with no elements.
    pub fn new(command: Command, session_id: u32) -> Self {
        Frame {
            command,
            session_id,
            elements: Vec::new(),
        }
    }

    /// Adds an element at the end (builder style).
    pub fn with(mut self, tag: Tag, value: impl Into<Bytes>) -> Self {
        self.elements.push(Element::new(tag, value));
        self
    }

    /// The first element with this tag.
    pub fn element(&self, tag: Tag) -> Option<&Element> {
        self.elements.iter().find(|e| e.tag == tag)
    }

    /// Length of the body in bytes (may exceed what a frame can carry; see
    /// [`Frame::encode`]).
    pub fn body_len(&self) -> usize {
        self.elements.iter().map(Element::encoded_len).sum()
    }

    /// Length of the whole frame in bytes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body_len()
    }

    /// Decodes one whole frame from the start of `bytes`, returning it and
    /// how many bytes it took. Bytes after the frame are left alone.
    ///
    /// An incomplete frame is [`WireError::Truncated`]; use
    /// [`crate::FrameCodec`] to read from a stream.
    pub fn decode(bytes: &[u8]) -> Result<(Frame, usize), WireError> {
        let mut buf = BytesMut::from(bytes);
        let mut decoder = crate::FrameCodec::new();
        match decoder.decode(&mut buf)? {
            Some(frame) => Ok((frame, bytes.len() - buf.len())),
            None => Err(WireError::Truncated {
                offset: 0,
                needed: decoder.bytes_needed(&buf),
            }),
        }
    }

    /// Decodes `bytes` as exactly one frame: trailing bytes are an error.
    pub fn decode_exact(bytes: &[u8]) -> Result<Frame, WireError> {
        let (frame, used) = Frame::decode(bytes)?;
        if used != bytes.len() {
            return Err(WireError::TrailingBytes {
                offset: used as u64,
                count: bytes.len() - used,
            });
        }
        Ok(frame)
    }

    /// Parses a frame body into elements. `body` is the body only; offsets in
    /// errors count from the start of the frame.
    pub(crate) fn parse_body(
        command: Command,
        session_id: u32,
        mut body: Bytes,
    ) -> Result<Frame, WireError> {
        // Every element takes at least 3 bytes, so this bounds the Vec by the
        // declared body length.
        let mut elements = Vec::with_capacity(body.len() / ELEMENT_HEADER_LEN);
        let mut offset = HEADER_LEN;
        while !body.is_empty() {
            let Some(&[tag, hi, lo]) = body.first_chunk::<ELEMENT_HEADER_LEN>() else {
                return Err(WireError::TruncatedElementHeader {
                    offset: offset as u64,
                    remaining: body.len(),
                });
            };
            let tag = Tag::from(tag);
            let declared = usize::from(u16::from_be_bytes([hi, lo]));
            let available = body.len() - ELEMENT_HEADER_LEN;
            if declared > available {
                return Err(WireError::ElementOverrun {
                    offset: offset as u64,
                    tag,
                    declared,
                    available,
                });
            }
            let _header = body.split_to(ELEMENT_HEADER_LEN);
            let value = body.split_to(declared);
            elements.push(Element { tag, value });
            offset += ELEMENT_HEADER_LEN + declared;
        }
        Ok(Frame {
            command,
            session_id,
            elements,
        })
    }

    /// Appends the whole frame, header and body, to `dst`, so that a
    /// transport can send it with one write.
    ///
    /// Fails if the body or an element is longer than the format can carry.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        let body_len = self.body_len();
        let declared = u16::try_from(body_len).map_err(|_| WireError::BodyTooLong {
            command: self.command,
            length: body_len,
        })?;
        dst.reserve(HEADER_LEN + body_len);
        Header {
            command: self.command,
            session_id: self.session_id,
            body_len: declared,
        }
        .encode(dst);
        for e in &self.elements {
            // Cannot fail after the body check (each element is part of the
            // body), but keep the check rather than a silent truncation.
            let len = u16::try_from(e.value.len()).map_err(|_| WireError::ElementTooLong {
                tag: e.tag,
                length: e.value.len(),
            })?;
            dst.put_u8(e.tag.to_u8());
            dst.put_u16(len);
            dst.put_slice(&e.value);
        }
        Ok(())
    }

    /// The whole frame as one buffer.
    pub fn to_bytes(&self) -> Result<Bytes, WireError> {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut buf)?;
        Ok(buf.freeze())
    }
}
