//! Phone key validation before issuing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use capf_ca::{CaError, EcCurve, KeyPolicy, KeySpec, validate_phone_key};
use common::{PHONE_KEYS, key, openssl};

fn openssl_spki(args: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let mut gen_args = vec!["genpkey"];
    gen_args.extend_from_slice(args);
    gen_args.extend_from_slice(&["-out", "k.pem"]);
    openssl(dir.path(), &gen_args);
    openssl(
        dir.path(),
        &[
            "pkey", "-in", "k.pem", "-pubout", "-outform", "DER", "-out", "pub.der",
        ],
    );
    std::fs::read(dir.path().join("pub.der")).unwrap()
}

/// SPKI for an RSA key with the given modulus and exponent (DER by hand).
fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn tlv(tag: u8, v: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match v.len() {
            l if l < 0x80 => out.push(l as u8),
            l if l < 0x100 => out.extend([0x81, l as u8]),
            l => out.extend([0x82, (l >> 8) as u8, l as u8]),
        }
        out.extend_from_slice(v);
        out
    }
    let int = |x: &[u8]| {
        let mut v = x.to_vec();
        if v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        tlv(0x02, &v)
    };
    let rsa_key = tlv(0x30, &[int(n), int(e)].concat());
    let mut bits = vec![0u8];
    bits.extend(rsa_key);
    let alg = hex::decode("300d06092a864886f70d0101010500").unwrap();
    tlv(0x30, &[alg, tlv(0x03, &bits)].concat())
}

#[test]
fn accepts_supported_keys_and_reports_their_spec() {
    for spec in PHONE_KEYS {
        let spki = key(spec).public_key_der().unwrap();
        assert_eq!(
            validate_phone_key(&spki, &KeyPolicy::default(), None).unwrap(),
            spec
        );
        assert_eq!(
            validate_phone_key(&spki, &KeyPolicy::default(), Some(spec)).unwrap(),
            spec
        );
    }
    let p521 = openssl_spki(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"]);
    assert_eq!(
        validate_phone_key(&p521, &KeyPolicy::default(), None).unwrap(),
        KeySpec::Ec(EcCurve::P521)
    );
    let only_p256 = KeyPolicy {
        curves: vec![EcCurve::P256],
        ..KeyPolicy::default()
    };
    assert!(matches!(
        validate_phone_key(&p521, &only_p256, None),
        Err(CaError::CurveNotAllowed {
            curve: EcCurve::P521
        })
    ));
}

#[test]
fn rejects_bad_keys_with_clear_errors() {
    let policy = KeyPolicy::default();
    let rsa512 = openssl_spki(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512"]);
    assert!(matches!(
        validate_phone_key(&rsa512, &policy, None),
        Err(CaError::RsaKeySize {
            bits: 512,
            min: 1024,
            max: 4096
        })
    ));

    let k1024 = openssl_spki(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"]);
    assert_eq!(
        validate_phone_key(&k1024, &policy, None).unwrap(),
        KeySpec::Rsa { bits: 1024 }
    );
    // Take the modulus out of a real key and pair it with bad exponents.
    let n_start = k1024
        .windows(3)
        .position(|w| w == [0x02, 0x81, 0x81])
        .unwrap()
        + 4;
    let n = &k1024[n_start..n_start + 128];
    assert!(validate_phone_key(&rsa_spki(n, &[0x01, 0x00, 0x01]), &policy, None).is_ok());
    for e in [&[0x01, 0x00, 0x00][..], &[0x01], &[0x02]] {
        let err = validate_phone_key(&rsa_spki(n, e), &policy, None).unwrap_err();
        assert!(matches!(err, CaError::RsaExponent { .. }), "{err}");
    }

    let k256k1 = openssl_spki(&[
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:secp256k1",
    ]);
    let err = validate_phone_key(&k256k1, &policy, None).unwrap_err();
    assert!(matches!(err, CaError::UnsupportedCurve { .. }), "{err}");
    assert!(err.to_string().contains("1.3.132.0.10"), "{err}");

    let ed = openssl_spki(&["-algorithm", "ED25519"]);
    assert!(matches!(
        validate_phone_key(&ed, &policy, None),
        Err(CaError::UnsupportedKeyAlgorithm { .. })
    ));

    let p256 = key(KeySpec::Ec(EcCurve::P256)).public_key_der().unwrap();
    assert!(matches!(
        validate_phone_key(&p256, &policy, Some(KeySpec::Rsa { bits: 2048 })),
        Err(CaError::KeySpecMismatch { .. })
    ));
    let rsa2048 = key(KeySpec::Rsa { bits: 2048 }).public_key_der().unwrap();
    assert!(matches!(
        validate_phone_key(&rsa2048, &policy, Some(KeySpec::Rsa { bits: 1024 })),
        Err(CaError::KeySpecMismatch { .. })
    ));

    // A point off the curve: change the last coordinate byte.
    let mut off = p256.clone();
    let last = off.len() - 1;
    off[last] ^= 0x01;
    assert!(matches!(
        validate_phone_key(&off, &policy, None),
        Err(CaError::InvalidEcPoint {
            curve: EcCurve::P256
        })
    ));

    for garbage in [&b""[..], b"\x30\x00", b"garbage", &p256[..p256.len() - 5]] {
        assert!(matches!(
            validate_phone_key(garbage, &policy, None),
            Err(CaError::MalformedPublicKey { .. })
        ));
    }
}

#[test]
fn rsa_public_exponent_must_be_odd_at_least_65537_and_at_most_32_bits() {
    let policy = KeyPolicy::default();

    // A real phone-sized key generated with e = 3 is refused.
    let e3 = openssl_spki(&[
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:1024",
        "-pkeyopt",
        "rsa_keygen_pubexp:3",
    ]);
    match validate_phone_key(&e3, &policy, None) {
        Err(CaError::RsaExponent { reason }) => {
            assert_eq!(reason, "exponent 3 is smaller than 65537");
        }
        other => panic!("{other:?}"),
    }
    let err = validate_phone_key(&e3, &policy, Some(KeySpec::Rsa { bits: 1024 })).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unacceptable RSA public exponent: exponent 3 is smaller than 65537"
    );

    // One modulus, many exponents.
    let k1024 = key(KeySpec::Rsa { bits: 1024 }).public_key_der().unwrap();
    let n_start = k1024
        .windows(3)
        .position(|w| w == [0x02, 0x81, 0x81])
        .unwrap()
        + 4;
    let n = &k1024[n_start..n_start + 128];
    for e in [
        &[0x01, 0x00, 0x01][..],
        &[0x01, 0x00, 0x03],
        &[0xff, 0xff, 0xff, 0xff],
    ] {
        assert_eq!(
            validate_phone_key(&rsa_spki(n, e), &policy, None).unwrap(),
            KeySpec::Rsa { bits: 1024 },
            "e = {e:02x?}"
        );
    }
    for (e, reason) in [
        (&[0x03][..], "exponent 3 is smaller than 65537"),
        (&[0x11], "exponent 17 is smaller than 65537"),
        (&[0x01, 0x01], "exponent 257 is smaller than 65537"),
        (&[0x00, 0xff, 0xff], "exponent 65535 is smaller than 65537"),
        (&[0x01, 0x00, 0x00], "exponent 65536 is smaller than 65537"),
        (&[0x01, 0x00, 0x02], "exponent 65538 is even"),
        (
            &[0x01, 0x00, 0x00, 0x00, 0x01],
            "exponent of 33 bits is larger than 32 bits",
        ),
    ] {
        match validate_phone_key(&rsa_spki(n, e), &policy, None) {
            Err(CaError::RsaExponent { reason: r }) => assert_eq!(r, reason),
            other => panic!("e = {e:02x?}: {other:?}"),
        }
    }
}
