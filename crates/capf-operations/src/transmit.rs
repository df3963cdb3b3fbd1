//! A message a session wants sent, with the session id it travels under.

use bytes::BytesMut;
use capf_wire::{Message, WireError};

/// One message for the transport to send: encode it and write the whole
/// frame with one write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The session id for the frame header.
    pub session_id: u32,
    /// The message.
    pub message: Message,
}

impl Transmit {
    /// Appends the whole frame (header and body) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        self.message.encode(self.session_id, dst)
    }

    /// The whole frame as one buffer.
    pub fn to_bytes(&self) -> Result<bytes::Bytes, WireError> {
        let mut buf = BytesMut::new();
        self.encode(&mut buf)?;
        Ok(buf.freeze())
    }
}
