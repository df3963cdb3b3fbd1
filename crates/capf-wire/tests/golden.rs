//! Golden-byte hex snippets and the whole
//! transcripts under `testdata/vectors/`: every frame decodes to the
//! expected typed message and re-encodes to the same bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use capf_wire::{
    AuthType, CertificateType, Command, Curve, Direction, Frame, HashId, KeyType, Message, Reason,
    RequestedKey, decode_all,
};

struct Line {
    direction: Direction,
    command: Command,
    bytes: Vec<u8>,
}

fn transcript(text: &str) -> Vec<Line> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.split_whitespace();
            let direction = match parts.next().unwrap() {
                "S>C" => Direction::ServerToPhone,
                "C>S" => Direction::PhoneToServer,
                other => panic!("bad direction {other}"),
            };
            let command = Command::from_wire_name(parts.next().unwrap()).unwrap();
            let bytes = hex::decode(parts.next().unwrap()).unwrap();
            Line {
                direction,
                command,
                bytes,
            }
        })
        .collect()
}

macro_rules! vector {
    ($name:literal) => {
        transcript(include_str!(concat!("../../../testdata/vectors/", $name)))
    };
}

/// Decodes one frame both raw and typed and checks both re-encode exactly.
fn round_trip(line: &Line) -> Message {
    let frame = Frame::decode_exact(&line.bytes).unwrap();
    assert_eq!(frame.command, line.command);
    assert_eq!(
        frame.to_bytes().unwrap().as_ref(),
        &line.bytes[..],
        "raw re-encode"
    );
    let message = Message::from_frame(&frame).unwrap();
    assert_eq!(message.command(), line.command);
    assert_eq!(message.direction(), Some(line.direction));
    let typed = message.to_frame(frame.session_id).unwrap();
    assert_eq!(
        typed.to_bytes().unwrap().as_ref(),
        &line.bytes[..],
        "typed re-encode of {}",
        line.command
    );
    message
}

fn all_round_trip(lines: &[Line]) -> Vec<Message> {
    let whole: Vec<u8> = lines.iter().flat_map(|l| l.bytes.clone()).collect();
    let frames = decode_all(&whole).unwrap();
    assert_eq!(frames.len(), lines.len());
    lines.iter().map(round_trip).collect()
}

#[test]
fn install_password_rsa2048() {
    let lines = vector!("install-password.txt");
    let m = all_round_trip(&lines);
    let Message::AuthRequest(req) = &m[0] else {
        panic!()
    };
    assert_eq!(req.version, Some(3));
    assert_eq!(req.auth_type, Some(AuthType::None));
    let Message::AuthResponse(resp) = &m[1] else {
        panic!()
    };
    assert_eq!(resp.device_name, "SEP001122334455");
    assert_eq!(resp.password.as_ref().unwrap().expose(), b"123456");
    assert_eq!(resp.reason, Some(Reason::UpdateCertificate));
    assert_eq!(resp.version, Some(3));
    assert!(resp.certificate.is_none());
    let Message::KeyGenerateRequest(kg) = &m[2] else {
        panic!()
    };
    assert_eq!(kg.key_size, Some(2048));
    assert_eq!(kg.key_type, Some(KeyType::Rsa));
    assert_eq!(kg.requested(), Some(RequestedKey::Rsa(2048)));
    assert_eq!(m[3], Message::RequestInProgress);
    let Message::KeyGenerateResponse(kr) = &m[4] else {
        panic!()
    };
    let spki = kr.public_key.as_ref().unwrap();
    assert_eq!(spki.len(), 294);
    assert_eq!(&spki[..4], &[0x30, 0x82, 0x01, 0x22]);
    let Message::StoreCertificateRequest(store) = &m[5] else {
        panic!()
    };
    assert_eq!(store.certificate_type, Some(CertificateType::Lsc));
    assert_eq!(store.certificate.certificate_type, CertificateType::Lsc);
    assert_eq!(store.certificate.der.len(), 856);
    let Message::StoreCertificateResponse(r) = &m[6] else {
        panic!()
    };
    assert!(r.reason.is_success());
    assert_eq!(m[7], Message::end_session(Reason::UpdateCertificate));
}

#[test]
fn install_null_string_ec_p384() {
    let m = all_round_trip(&vector!("install-null-ec.txt"));
    let Message::AuthResponse(resp) = &m[1] else {
        panic!()
    };
    assert_eq!(resp.device_name, "SEP0011223344AA");
    assert!(resp.password.as_ref().unwrap().is_empty());
    let Message::KeyGenerateRequest(kg) = &m[2] else {
        panic!()
    };
    assert_eq!(kg.key_size, None);
    assert_eq!(kg.requested(), Some(RequestedKey::Ec(Curve::P384)));
    let Message::KeyGenerateResponse(kr) = &m[4] else {
        panic!()
    };
    assert_eq!(kr.public_key.as_ref().unwrap().len(), 120);
}

#[test]
fn install_authenticated_by_lsc_with_sudi() {
    let m = all_round_trip(&vector!("install-lsc-auth.txt"));
    let Message::AuthResponse(resp) = &m[1] else {
        panic!()
    };
    let cert = resp.certificate.as_ref().unwrap();
    assert_eq!(cert.der.len(), 856);
    assert_eq!(resp.signed_data.as_ref().unwrap().len(), 256);
    let sha2 = resp.sha2_signed_data.as_ref().unwrap();
    assert_eq!(sha2.hash, HashId::Sha512);
    assert_eq!(sha2.signature.len(), 256);
    let sudi = resp.sudi.as_ref().unwrap();
    assert_eq!(sudi.certificate.len(), 856);
    assert_eq!(sudi.sha1_signature.len(), 256);
    assert_eq!(sudi.sha512_signature.len(), 256);
    assert!(resp.password.as_ref().unwrap().is_empty());
}

#[test]
fn lsc_auth_response_element_layout() {
    // `01(1) 04(861) 06(256) 07(1) 0b(1)=00 0d(16) 10(1377) 14(259)`, body 2796.
    let lines = vector!("install-lsc-auth.txt");
    let frame = Frame::decode_exact(&lines[1].bytes).unwrap();
    let layout: Vec<(u8, usize)> = frame
        .elements
        .iter()
        .map(|e| (e.tag.to_u8(), e.value.len()))
        .collect();
    assert_eq!(
        layout,
        [
            (1, 1),
            (4, 861),
            (6, 256),
            (7, 1),
            (11, 1),
            (13, 16),
            (16, 1377),
            (20, 259)
        ]
    );
    assert_eq!(frame.body_len(), 2796);
}

#[test]
fn fetch() {
    let m = all_round_trip(&vector!("fetch.txt"));
    assert_eq!(m[2], Message::FetchCertificateRequest(Default::default()));
    let Message::FetchCertificateResponse(r) = &m[3] else {
        panic!()
    };
    assert!(r.reason.is_success());
    assert_eq!(r.certificate.as_ref().unwrap().der.len(), 856);
    assert_eq!(m[4], Message::end_session(Reason::NoAction));
}

#[test]
fn delete() {
    let m = all_round_trip(&vector!("delete.txt"));
    assert_eq!(m[2], Message::DeleteCertificateRequest);
    let Message::DeleteCertificateResponse(r) = &m[3] else {
        panic!()
    };
    assert!(r.reason.is_success());
    assert_eq!(m[4], Message::end_session(Reason::UpdateCertificate));
}

fn golden_snippet(hex_text: &str, direction: Direction) -> Message {
    let bytes = hex::decode(hex_text.replace([' ', '|'], "")).unwrap();
    let command = Command::from(bytes[1]);
    round_trip(&Line {
        direction,
        command,
        bytes,
    })
}

#[test]
fn golden_hex_snippets() {
    use Direction::{PhoneToServer as Up, ServerToPhone as Down};
    assert_eq!(
        golden_snippet("55 01 00000001 0008 | 07 0001 03  08 0001 00", Down),
        Message::AuthRequest(capf_wire::AuthRequest::capfd())
    );
    golden_snippet(
        "55 02 00000001 0025 | 01 0001 01  07 0001 03  0b 0007 31323334353600  0d 0010 53455030303131323233333434353500",
        Up,
    );
    assert_eq!(
        golden_snippet("55 03 00000001 0009 | 0a 0002 0800  11 0001 00", Down),
        Message::KeyGenerateRequest(capf_wire::KeyGenerateRequest::rsa(2048))
    );
    assert_eq!(
        golden_snippet("55 11 00000001 0000 |", Up),
        Message::RequestInProgress
    );
    assert_eq!(
        golden_snippet("55 03 00000002 0008 | 11 0001 01  12 0001 01", Down),
        Message::KeyGenerateRequest(capf_wire::KeyGenerateRequest::ec(Curve::P384))
    );
    for (hex_text, reason) in [
        ("55 0f 00000007 0004 | 01 0001 00", Reason::NoAction),
        ("55 0f 00000008 0004 | 01 0001 09", Reason::UnknownDevice),
        ("55 0f 00000009 0004 | 01 0001 07", Reason::InvalidElement),
        (
            "55 0f 00000001 0004 | 01 0001 01",
            Reason::UpdateCertificate,
        ),
    ] {
        assert_eq!(golden_snippet(hex_text, Down), Message::end_session(reason));
    }
    assert_eq!(
        golden_snippet("55 0b 00000004 0000 |", Down),
        Message::FetchCertificateRequest(Default::default())
    );
    assert_eq!(
        golden_snippet("55 0d 00000005 0000 |", Down),
        Message::DeleteCertificateRequest
    );
    golden_snippet("55 0e 00000005 0004 | 01 0001 01", Up);
    golden_snippet("55 0a 00000001 0004 | 01 0001 01", Up);
}

#[test]
fn what_we_write_uses_only_tags_the_other_side_accepts() {
    for file in [
        vector!("install-password.txt"),
        vector!("install-null-ec.txt"),
        vector!("install-lsc-auth.txt"),
        vector!("fetch.txt"),
        vector!("delete.txt"),
    ] {
        for line in file {
            let frame = Frame::decode_exact(&line.bytes).unwrap();
            let message = Message::from_frame(&frame).unwrap();
            let written = message.to_frame(1).unwrap();
            let accepted = message.direction().unwrap().accepted_tags();
            for e in &written.elements {
                assert!(
                    accepted.contains(&e.tag),
                    "{} carries {}",
                    line.command,
                    e.tag
                );
            }
        }
    }
}
