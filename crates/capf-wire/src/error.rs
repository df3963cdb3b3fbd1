//! The one error type of this crate.

use crate::{Command, Tag};

/// Why bytes could not be read as CAPF, or a message could not be written.
///
/// Every decoding error says where it happened: `offset` counts bytes from the
/// start of the frame (or, for errors from [`crate::FrameCodec`], from the
/// start of the stream it has been fed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The first byte of a frame is not the protocol id 0x55.
    #[error(
        "offset {offset}: protocol id {found:#04x}, expected 0x55 (not a CAPF frame, or out of step)"
    )]
    BadProtocolId {
        /// Where the frame starts.
        offset: u64,
        /// The byte found there.
        found: u8,
    },
    /// The header declares a body longer than the decoder accepts.
    #[error(
        "offset {offset}: {command} frame declares a {declared}-byte body, more than the {max} allowed"
    )]
    FrameTooLarge {
        /// Where the frame starts.
        offset: u64,
        /// The frame's command.
        command: Command,
        /// Declared body length.
        declared: usize,
        /// The decoder's limit.
        max: usize,
    },
    /// Input ended in the middle of a frame.
    #[error("offset {offset}: input ends inside a frame ({needed} more bytes needed)")]
    Truncated {
        /// Where the incomplete frame starts.
        offset: u64,
        /// How many more bytes the frame needs.
        needed: usize,
    },
    /// An element header (3 bytes) does not fit in what is left of the body.
    #[error("offset {offset}: {remaining} byte(s) left in the body, too few for an element header")]
    TruncatedElementHeader {
        /// Where the partial element header starts.
        offset: u64,
        /// Bytes left in the body.
        remaining: usize,
    },
    /// An element's declared length runs past the end of the body.
    #[error(
        "offset {offset}: element {tag} declares {declared} bytes but only {available} remain in the body"
    )]
    ElementOverrun {
        /// Where the element starts.
        offset: u64,
        /// The element's tag.
        tag: Tag,
        /// Its declared length.
        declared: usize,
        /// Bytes left in the body after its header.
        available: usize,
    },
    /// Bytes follow a frame that was meant to be the whole input.
    #[error("offset {offset}: {count} byte(s) after the end of the frame")]
    TrailingBytes {
        /// Where the extra bytes start.
        offset: u64,
        /// How many there are.
        count: usize,
    },
    /// A fixed-size element has the wrong length.
    #[error("offset {offset}: element {tag} has {found} value bytes, expected {expected}")]
    BadElementLength {
        /// Where the element starts.
        offset: u64,
        /// The element's tag.
        tag: Tag,
        /// Expected value length.
        expected: usize,
        /// Found value length.
        found: usize,
    },
    /// An element's value is malformed.
    #[error("offset {offset}: element {tag}: {problem}")]
    BadElementValue {
        /// Where the element starts.
        offset: u64,
        /// The element's tag.
        tag: Tag,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A known element appears twice in one message.
    #[error("offset {offset}: element {tag} appears a second time in {command}")]
    DuplicateElement {
        /// Where the second occurrence starts.
        offset: u64,
        /// The frame's command.
        command: Command,
        /// The repeated tag.
        tag: Tag,
    },
    /// A message lacks an element it cannot do without.
    #[error("{command} lacks the required element {tag}")]
    MissingElement {
        /// The frame's command.
        command: Command,
        /// The missing tag.
        tag: Tag,
    },
    /// A message would be longer than a frame can carry.
    #[error("{command} body would be {length} bytes; a frame carries at most 65535")]
    BodyTooLong {
        /// The message's command.
        command: Command,
        /// The body length it would need.
        length: usize,
    },
    /// An element value is longer than an element can carry.
    #[error("element {tag} would be {length} bytes; an element carries at most 65535")]
    ElementTooLong {
        /// The element's tag.
        tag: Tag,
        /// The value length it would need.
        length: usize,
    },
    /// A field that must be NUL-terminated text is not valid UTF-8.
    #[error("offset {offset}: element {tag} is not valid UTF-8 text")]
    NotText {
        /// Where the element starts.
        offset: u64,
        /// The element's tag.
        tag: Tag,
    },
    /// Reading from or writing to the transport failed (tokio codec only).
    #[cfg(feature = "tokio-codec")]
    #[error("transport: {0}")]
    Io(String),
}

impl WireError {
    /// The offset the error names, if any.
    pub fn offset(&self) -> Option<u64> {
        match self {
            WireError::BadProtocolId { offset, .. }
            | WireError::FrameTooLarge { offset, .. }
            | WireError::Truncated { offset, .. }
            | WireError::TrailingBytes { offset, .. }
            | WireError::TruncatedElementHeader { offset, .. }
            | WireError::ElementOverrun { offset, .. }
            | WireError::BadElementLength { offset, .. }
            | WireError::BadElementValue { offset, .. }
            | WireError::DuplicateElement { offset, .. }
            | WireError::NotText { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// The same error with its offset moved by `by` bytes (used to turn an
    /// offset within a frame into an offset within a stream).
    pub fn shifted(mut self, by: u64) -> Self {
        match &mut self {
            WireError::BadProtocolId { offset, .. }
            | WireError::FrameTooLarge { offset, .. }
            | WireError::Truncated { offset, .. }
            | WireError::TrailingBytes { offset, .. }
            | WireError::TruncatedElementHeader { offset, .. }
            | WireError::ElementOverrun { offset, .. }
            | WireError::BadElementLength { offset, .. }
            | WireError::BadElementValue { offset, .. }
            | WireError::DuplicateElement { offset, .. }
            | WireError::NotText { offset, .. } => *offset += by,
            _ => {}
        }
        self
    }
}

#[cfg(feature = "tokio-codec")]
impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> Self {
        WireError::Io(e.to_string())
    }
}
