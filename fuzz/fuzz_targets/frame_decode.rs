//! Frame decoding: arbitrary bytes, fed whole and in chunks, must give the
//! same frames or the same error, never a panic; decoded frames re-encode to
//! the bytes they came from.
#![no_main]

use bytes::BytesMut;
use capf_wire::{Frame, FrameCodec, WireError};
use libfuzzer_sys::fuzz_target;

fn decode(data: &[u8], chunk: usize) -> (Result<(), WireError>, Vec<Frame>, usize) {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut used = 0;
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => {
                    used += f.encoded_len();
                    frames.push(f);
                }
                Ok(None) => break,
                Err(e) => return (Err(e), frames, used),
            }
        }
    }
    (codec.finish(&buf), frames, used)
}

fuzz_target!(|data: &[u8]| {
    let chunk = data.first().map_or(1, |b| usize::from(*b % 17) + 1);
    let whole = decode(data, data.len());
    let chunked = decode(data, chunk);
    assert_eq!(whole.0, chunked.0);
    assert_eq!(whole.1, chunked.1);
    let mut out = BytesMut::new();
    for f in &whole.1 {
        f.encode(&mut out).expect("a decoded frame re-encodes");
    }
    assert_eq!(&out[..], &data[..whole.2]);
});
