//! `capf wire decode` input: arbitrary text (a hex dump or a transcript
//! with directions, comments and command names) or arbitrary frame bytes
//! (given as hex) through the command's own parser and element renderer,
//! shown both redacted and with secrets, as text and as JSON. Never a
//! panic; passwords never appear unredacted unless asked.
//!
//! The command lives in the `capf` binary crate (no library), so its two
//! pure modules are compiled in here by path, unchanged (the times they
//! show come from capf-operations, as in the binary). The first input
//! byte picks the mode: even = the rest is the text, odd = the rest is raw
//! bytes, hex-encoded first.
#![no_main]

use libfuzzer_sys::fuzz_target;

use capf_operations::time_text;

// At the crate root: their `pub(super)` items are then visible here.
#[path = "../../crates/capf-cli/src/commands/wire/elements.rs"]
mod elements;
#[path = "../../crates/capf-cli/src/commands/wire/hex_input.rs"]
mod hex_input;

mod wire {
    use crate::{elements, hex_input};
    use bytes::BytesMut;
    use capf_wire::{ELEMENT_HEADER_LEN, FrameCodec, HEADER_LEN, Tag};

    /// What `capf wire decode` (and `--json`, `--show-secrets`) does with
    /// `text`, minus the printing: every frame and element rendered.
    pub fn decode(text: &str) {
        let Ok(input) = hex_input::parse(text) else {
            return;
        };
        let mut total = 0u64;
        for segment in &input.segments {
            assert_eq!(segment.start, total, "segments are contiguous");
            total += segment.bytes.len() as u64;
            let mut codec = FrameCodec::new();
            let mut buf = BytesMut::from(segment.bytes.as_slice());
            loop {
                let offset = segment.start + codec.position();
                match codec.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        let mut at = offset + HEADER_LEN as u64;
                        for element in &frame.elements {
                            for show in [false, true] {
                                let r = elements::render(element, at, show);
                                let mut out =
                                    format!("  {} {} ({} {})", r.name, r.summary, r.tag, r.length);
                                for (label, value) in &r.details {
                                    out.push_str(&format!("\n      {label}  {value}"));
                                }
                                let json: serde_json::Map<String, serde_json::Value> = r
                                    .fields
                                    .into_iter()
                                    .map(|(k, v)| (k.to_owned(), v))
                                    .collect();
                                out.push_str(&serde_json::to_string(&json).unwrap());
                                if !show && element.tag == Tag::Password && element.value.len() > 4
                                {
                                    // The redacted rendering never shows the string.
                                    if let Ok(s) = std::str::from_utf8(&element.value) {
                                        let s = s.trim_end_matches('\0');
                                        if s.len() >= 4 && s.chars().all(|c| c.is_ascii_digit()) {
                                            assert!(!out.contains(s), "password shown: {out}");
                                        }
                                    }
                                }
                            }
                            at += (ELEMENT_HEADER_LEN + element.value.len()) as u64;
                        }
                    }
                    Ok(None) => {
                        let _ = codec.finish(&buf);
                        break;
                    }
                    Err(e) => {
                        let _ = e
                            .offset()
                            .and_then(|o| input.line_of(o.saturating_add(segment.start)));
                        break;
                    }
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        wire::decode(&String::from_utf8_lossy(rest));
    } else {
        wire::decode(&hex::encode(rest));
    }
});
