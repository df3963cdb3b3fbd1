//! Typed message decoding: any frame either fails with an error or gives a
//! message that writes back to a frame reading as the same message.
#![no_main]

use capf_wire::{Frame, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((frame, _)) = Frame::decode(data) else {
        return;
    };
    if let Ok(message) = Message::from_frame(&frame) {
        let written = message
            .to_frame(frame.session_id)
            .expect("a decoded message re-encodes");
        let reread = Message::from_frame(&written).expect("what we write reads back");
        assert_eq!(reread, message);
        let _ = written.to_bytes().expect("fits in a frame");
    }
});
