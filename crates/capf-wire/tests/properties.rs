//! Property tests: frames round-trip byte for byte; any bytes, fed in any
//! chunking, give frames or an error and never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::BytesMut;
use capf_wire::{Command, Element, Frame, FrameCodec, Message, Tag, WireError};
use proptest::prelude::*;

fn element() -> impl Strategy<Value = Element> {
    (any::<u8>(), prop::collection::vec(any::<u8>(), 0..64))
        .prop_map(|(tag, value)| Element::new(Tag::from(tag), value))
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        any::<u8>(),
        any::<u32>(),
        prop::collection::vec(element(), 0..12),
    )
        .prop_map(|(command, session_id, elements)| Frame {
            command: Command::from(command),
            session_id,
            elements,
        })
}

/// Feeds `bytes` to a decoder in chunks of the given sizes (cycled) and
/// collects frames until the input ends or an error.
fn decode_chunked(bytes: &[u8], chunks: &[usize]) -> Result<Vec<Frame>, WireError> {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = bytes;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap()).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(frame) = codec.decode(&mut buf)? {
            frames.push(frame);
        }
    }
    codec.finish(&buf)?;
    Ok(frames)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_frame_round_trips_byte_for_byte(frames in prop::collection::vec(frame(), 1..5),
                                           chunks in prop::collection::vec(1usize..40, 1..8)) {
        let mut bytes = BytesMut::new();
        for f in &frames {
            f.encode(&mut bytes).unwrap();
        }
        let decoded = decode_chunked(&bytes, &chunks).unwrap();
        prop_assert_eq!(&decoded, &frames);
        let mut again = BytesMut::new();
        for f in &decoded {
            f.encode(&mut again).unwrap();
        }
        prop_assert_eq!(&again[..], &bytes[..]);
    }

    #[test]
    fn any_bytes_in_any_chunking_decode_the_same_or_fail_cleanly(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        chunks in prop::collection::vec(1usize..20, 1..8),
        lead_with_protocol_id in any::<bool>(),
    ) {
        let mut bytes = bytes;
        if lead_with_protocol_id && !bytes.is_empty() {
            bytes[0] = 0x55;
        }
        let whole = decode_chunked(&bytes, &[usize::MAX]);
        let chunked = decode_chunked(&bytes, &chunks);
        prop_assert_eq!(&whole, &chunked);
        if let Err(e) = whole {
            let offset = e.offset();
            prop_assert!(offset.is_some(), "{e} names no offset");
            prop_assert!(offset.unwrap() <= bytes.len() as u64);
        }
    }

    #[test]
    fn typed_decoding_never_panics_and_is_stable(f in frame()) {
        if let Ok(message) = Message::from_frame(&f) {
            // What we write back reads as the same message.
            let written = message.to_frame(f.session_id).unwrap();
            let reread = Message::from_frame(&written).unwrap();
            prop_assert_eq!(reread, message);
        }
    }

    #[test]
    fn typed_decoding_of_known_commands_with_random_known_tags(
        command in 1u8..=23,
        elements in prop::collection::vec(
            (prop::sample::select(vec![1u8, 3, 4, 6, 7, 8, 9, 10, 11, 13, 16, 17, 18, 20, 99]),
             prop::collection::vec(any::<u8>(), 0..8)),
            0..6),
    ) {
        let f = Frame {
            command: Command::from(command),
            session_id: 7,
            elements: elements.into_iter().map(|(t, v)| Element::new(Tag::from(t), v)).collect(),
        };
        let _ = Message::from_frame(&f);
    }
}

#[test]
fn header_split_across_reads() {
    let bytes = hex::decode("550f00000001000401000101").unwrap();
    for split in 0..bytes.len() {
        let frames = decode_chunked(&bytes, &[split.max(1), bytes.len()]).unwrap();
        assert_eq!(frames.len(), 1);
    }
}

#[test]
fn malformed_inputs_name_their_offset_and_tag() {
    let cases: &[(&str, WireError)] = &[
        (
            "56",
            WireError::BadProtocolId {
                offset: 0,
                found: 0x56,
            },
        ),
        (
            "550f0000000100020100",
            WireError::TruncatedElementHeader {
                offset: 8,
                remaining: 2,
            },
        ),
        (
            "550f000000010004010002",
            WireError::Truncated {
                offset: 0,
                needed: 1,
            },
        ),
        (
            "550f00000001000401000501",
            WireError::ElementOverrun {
                offset: 8,
                tag: Tag::Reason,
                declared: 5,
                available: 1,
            },
        ),
    ];
    for (hex_text, expected) in cases {
        let bytes = hex::decode(hex_text).unwrap();
        assert_eq!(
            &capf_wire::decode_all(&bytes).unwrap_err(),
            expected,
            "{hex_text}"
        );
    }
}

#[test]
fn second_frame_errors_count_from_the_stream_start() {
    let bytes = hex::decode("550f0000000100040100010199").unwrap();
    let err = capf_wire::decode_all(&bytes).unwrap_err();
    assert_eq!(
        err,
        WireError::BadProtocolId {
            offset: 12,
            found: 0x99
        }
    );
}

#[test]
fn typed_errors_name_offset_and_tag() {
    // END_SESSION whose REASON has two bytes.
    let f =
        Frame::decode_exact(&hex::decode("550f000000010005010002 0101".replace(' ', "")).unwrap())
            .unwrap();
    assert_eq!(
        Message::from_frame(&f).unwrap_err(),
        WireError::BadElementLength {
            offset: 8,
            tag: Tag::Reason,
            expected: 1,
            found: 2
        }
    );
    // AUTH_RESPONSE with two device names.
    let f = Frame::new(Command::AuthResponse, 1)
        .with(Tag::DeviceName, &b"SEP001122334455\0"[..])
        .with(Tag::DeviceName, &b"SEP0011223344AA\0"[..]);
    assert_eq!(
        Message::from_frame(&f).unwrap_err(),
        WireError::DuplicateElement {
            offset: 27,
            command: Command::AuthResponse,
            tag: Tag::DeviceName
        }
    );
    // AUTH_RESPONSE without a device name.
    let f = Frame::new(Command::AuthResponse, 1).with(Tag::Version, &[3u8][..]);
    assert_eq!(
        Message::from_frame(&f).unwrap_err(),
        WireError::MissingElement {
            command: Command::AuthResponse,
            tag: Tag::DeviceName
        }
    );
}

#[test]
fn tolerant_reading_unknown_tags_any_order_no_version() {
    let f = Frame::new(Command::AuthResponse, 9)
        .with(Tag::Unknown(99), &b"whatever"[..])
        .with(Tag::DeviceName, &b"CSFUSER\0"[..])
        .with(Tag::Reason, &[1u8][..]);
    let Message::AuthResponse(m) = Message::from_frame(&f).unwrap() else {
        panic!()
    };
    assert_eq!(m.device_name, "CSFUSER");
    assert_eq!(m.version, None);
    assert_eq!(m.password, None);
    // The raw frame keeps the unknown tag and order.
    let bytes = f.to_bytes().unwrap();
    assert_eq!(Frame::decode_exact(&bytes).unwrap(), f);
}

#[test]
fn unused_commands_stay_raw_frames() {
    let f = Frame::new(Command::RetryLater, 3).with(Tag::RetryDelay, &[0u8, 30][..]);
    let m = Message::from_frame(&f).unwrap();
    assert_eq!(m, Message::Other(f.clone()));
    assert_eq!(m.to_frame(3).unwrap(), f);
    let f = Frame::new(Command::Unknown(200), 3);
    assert_eq!(Message::from_frame(&f).unwrap(), Message::Other(f));
}

#[test]
fn cucm_key_request_without_key_type_means_rsa() {
    let f = Frame::new(Command::KeyGenerateRequest, 1).with(Tag::KeySize, &[0x08u8, 0][..]);
    let Message::KeyGenerateRequest(k) = Message::from_frame(&f).unwrap() else {
        panic!()
    };
    assert_eq!(k.requested(), Some(capf_wire::RequestedKey::Rsa(2048)));
}

#[test]
fn decoder_refuses_frames_over_its_limit_before_buffering_them() {
    let mut codec = FrameCodec::with_max_body_len(16 * 1024);
    let mut buf = BytesMut::from(&hex::decode("550200000001ffff").unwrap()[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(WireError::FrameTooLarge {
            declared: 65535,
            ..
        })
    ));
}

#[test]
fn oversized_messages_are_refused_on_encode() {
    let big = vec![0u8; 70_000];
    let m = Message::StoreCertificateRequest(capf_wire::StoreCertificateRequest::lsc(big));
    assert!(matches!(
        m.to_frame(1),
        Err(WireError::ElementTooLong { .. })
    ));
}

#[test]
fn password_debug_never_shows_the_secret() {
    let p = capf_wire::Password::new(&b"123456"[..]);
    assert!(!format!("{p:?}").contains("123456"));
    let m = capf_wire::AuthResponse::with_password("SEP001122334455", p);
    assert!(!format!("{m:?}").contains("123456"));
}
