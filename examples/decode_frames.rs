//! Decodes a CAPF byte transcript and prints each frame and its typed
//! message.
//!
//! ```text
//! cargo run --example decode_frames                    # the built-in install exchange
//! cargo run --example decode_frames -- 550f00000001000401000109
//! ```

use bytes::BytesMut;
use capf_wire::{FrameCodec, Message};

const INSTALL: &str = include_str!("../testdata/vectors/install-password.txt");

fn main() {
    let hex_text: String = match std::env::args().nth(1) {
        Some(arg) => arg,
        None => INSTALL
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_whitespace().nth(2))
            .collect(),
    };
    let cleaned: String = hex_text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = match hex::decode(&cleaned) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("not hex: {e}");
            std::process::exit(2);
        }
    };
    let mut buf = BytesMut::from(&bytes[..]);
    let mut codec = FrameCodec::new();
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => {
                println!(
                    "{} session {} ({} bytes)",
                    frame.command,
                    frame.session_id,
                    frame.encoded_len()
                );
                for e in &frame.elements {
                    println!("    {:<18} {} bytes", e.tag.to_string(), e.value.len());
                }
                match Message::from_frame(&frame) {
                    Ok(m) => println!("    => {m:?}"),
                    Err(e) => println!("    => not a valid typed message: {e}"),
                }
            }
            Ok(None) => break,
            Err(e) => {
                eprintln!("malformed input: {e}");
                std::process::exit(1);
            }
        }
    }
    if let Err(e) = codec.finish(&buf) {
        eprintln!("malformed input: {e}");
        std::process::exit(1);
    }
}
