//! Incremental frame decoding from a byte stream, and the tokio-util codec.

use bytes::{Buf, BytesMut};

use crate::frame::{HEADER_LEN, Header, MAX_BODY_LEN};
use crate::{Frame, WireError};

/// Reads frames from a stream of bytes as they arrive.
///
/// Feed it whatever the transport delivered; [`FrameCodec::decode`] returns
/// `Ok(None)` until a whole frame is buffered (a header split across reads is
/// fine), then the frame, consuming its bytes. It never panics and never
/// reserves more than one frame's declared length, which is bounded by
/// [`FrameCodec::max_body_len`].
///
/// Errors name the offset counted from the first byte this decoder was fed.
/// After an error the stream is out of step and should be closed.
///
/// ```
/// use bytes::BytesMut;
/// use capf_wire::{Command, FrameCodec};
///
/// let mut decoder = FrameCodec::new();
/// let mut buf = BytesMut::from(&[0x55, 0x11, 0, 0, 0][..]);
/// assert!(decoder.decode(&mut buf).unwrap().is_none()); // header incomplete
/// buf.extend_from_slice(&[1, 0, 0]);
/// let frame = decoder.decode(&mut buf).unwrap().unwrap();
/// assert_eq!(frame.command, Command::RequestInProgress);
/// assert_eq!(frame.session_id, 1);
/// ```
#[derive(Clone, Debug)]
pub struct FrameCodec {
    max_body_len: usize,
    consumed: u64,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new()
    }
}

impl FrameCodec {
    /// A decoder accepting any body the format allows (65535 bytes).
    pub fn new() -> Self {
        FrameCodec {
            max_body_len: MAX_BODY_LEN,
            consumed: 0,
        }
    }

    /// A decoder that refuses frames whose declared body exceeds `max`
    /// (a server may want far less than 64 KiB: real messages stay under
    /// 16 KiB).
    pub fn with_max_body_len(max: usize) -> Self {
        FrameCodec {
            max_body_len: max.min(MAX_BODY_LEN),
            consumed: 0,
        }
    }

    /// The largest body this decoder accepts.
    pub fn max_body_len(&self) -> usize {
        self.max_body_len
    }

    /// How many bytes this decoder has consumed so far (the stream offset of
    /// the next frame).
    pub fn position(&self) -> u64 {
        self.consumed
    }

    /// How many more bytes `buf` needs before the next frame is complete
    /// (at least 1 when a frame is incomplete; 0 when one is ready or the
    /// header is invalid).
    pub fn bytes_needed(&self, buf: &[u8]) -> usize {
        match Header::peek(buf) {
            Ok(Some(h)) => h.frame_len().saturating_sub(buf.len()),
            Ok(None) => HEADER_LEN - buf.len(),
            Err(_) => 0,
        }
    }

    /// Takes the next whole frame out of `buf`, or returns `Ok(None)` if it
    /// is not all there yet.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        let at = self.consumed;
        let Some(header) = Header::peek(buf).map_err(|e| e.shifted(at))? else {
            return Ok(None);
        };
        let body_len = usize::from(header.body_len);
        if body_len > self.max_body_len {
            return Err(WireError::FrameTooLarge {
                offset: at,
                command: header.command,
                declared: body_len,
                max: self.max_body_len,
            });
        }
        let frame_len = header.frame_len();
        if buf.len() < frame_len {
            // Make room for the rest of this frame only: bounded by the
            // declared length, which was just checked.
            buf.reserve(frame_len - buf.len());
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let body = buf.split_to(body_len).freeze();
        let frame = Frame::parse_body(header.command, header.session_id, body)
            .map_err(|e| e.shifted(at))?;
        self.consumed += frame_len as u64;
        Ok(Some(frame))
    }

    /// Call at end of input: `Ok(())` if nothing is left over, else the
    /// error for the incomplete frame.
    pub fn finish(&self, buf: &[u8]) -> Result<(), WireError> {
        if buf.is_empty() {
            return Ok(());
        }
        Header::peek(buf).map_err(|e| e.shifted(self.consumed))?;
        Err(WireError::Truncated {
            offset: self.consumed,
            needed: self.bytes_needed(buf),
        })
    }
}

/// Decodes every frame in `bytes`, which must hold whole frames only.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<Frame>, WireError> {
    let mut buf = BytesMut::from(bytes);
    let mut decoder = FrameCodec::new();
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf)? {
        frames.push(frame);
    }
    decoder.finish(&buf)?;
    Ok(frames)
}

#[cfg(feature = "tokio-codec")]
mod tokio_codec {
    use bytes::BytesMut;
    use tokio_util::codec::{Decoder, Encoder};

    use super::FrameCodec;
    use crate::{Frame, WireError};

    impl Decoder for FrameCodec {
        type Item = Frame;
        type Error = WireError;

        fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
            FrameCodec::decode(self, src)
        }

        fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
            match FrameCodec::decode(self, buf)? {
                Some(frame) => Ok(Some(frame)),
                None => self.finish(buf).map(|()| None),
            }
        }
    }

    impl Encoder<&Frame> for FrameCodec {
        type Error = WireError;

        fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), WireError> {
            frame.encode(dst)
        }
    }

    impl Encoder<Frame> for FrameCodec {
        type Error = WireError;

        fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), WireError> {
            frame.encode(dst)
        }
    }
}

#[cfg(all(test, feature = "tokio-codec"))]
mod tokio_codec_tests {
    use bytes::BytesMut;
    use tokio_util::codec::{Decoder, Encoder};

    use crate::{Command, Frame, FrameCodec, Tag};

    #[test]
    fn tokio_util_decoder_and_encoder() {
        let frame = Frame::new(Command::EndSession, 4).with(Tag::Reason, &[1u8][..]);
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::new();
        Encoder::encode(&mut codec, &frame, &mut buf).unwrap();
        let mut partial = buf.split_to(5);
        assert_eq!(Decoder::decode(&mut codec, &mut partial).unwrap(), None);
        assert!(
            codec.decode_eof(&mut partial).is_err(),
            "EOF inside a frame"
        );
        partial.unsplit(buf);
        assert_eq!(
            Decoder::decode(&mut codec, &mut partial).unwrap(),
            Some(frame)
        );
        assert_eq!(codec.decode_eof(&mut partial).unwrap(), None);
    }
}
