//! The phone session fed arbitrary server messages: it never panics and
//! sends nothing after it finished.
#![no_main]

use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use capf_operations::phone::{Credentials, PhoneConfig, PhoneEvent, PhoneSession};
use capf_wire::{FrameCodec, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let credentials = match data.first() {
        Some(b) if b % 2 == 0 => Credentials::AuthString("123456".parse().expect("digits")),
        _ => Credentials::NullString,
    };
    let config = PhoneConfig::new("SEP001122334455", credentials).with_lsc(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
    let mut phone = PhoneSession::new(config, now);
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::from(data.get(1..).unwrap_or_default());
    for _ in 0..64 {
        while let Some(event) = phone.poll_event() {
            match event {
                PhoneEvent::GenerateKey(_) => phone.key_generated(now, Ok(vec![0x30, 0x00])),
                PhoneEvent::StoreCertificate { .. } => phone.certificate_stored(now, true),
                PhoneEvent::DeleteCertificate => phone.certificate_deleted(now, true),
                PhoneEvent::Finished => {}
            }
        }
        let finished_before = phone.is_finished();
        while let Some(t) = phone.poll_transmit() {
            assert!(!finished_before, "sent {} after finishing", t.message.command());
        }
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => match Message::from_frame(&frame) {
                Ok(m) => phone.handle_message(now, frame.session_id, m),
                Err(e) => phone.handle_malformed(now, &e),
            },
            Ok(None) => match phone.poll_timeout() {
                Some(deadline) => {
                    now = deadline;
                    phone.handle_timeout(now);
                }
                None => break,
            },
            Err(e) => {
                phone.handle_malformed(now, &e);
                buf.clear();
            }
        }
    }
});
