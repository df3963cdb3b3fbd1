//! Encrypted configs (`SEP<MAC>.cnf.xml.enc.sgn`) and their signed stub.

use aes::Aes128;
use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use capf_ca::{CaCertificate, PrivateKey};
use md5::{Digest, Md5};
use rand_core::TryCryptoRng;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Encrypt, PrivateKey as RsaPrivateKey};

use crate::cert::{KeyAlgorithm, key_algorithm};
use crate::codec::{RawHeader, put_element};
use crate::error::{Place, ProvisioningError, Result};
use crate::header::{EncryptionInfo, HeaderSpec, SignedHeader, Version, build_signed};
use crate::sgn::SignedFile;
use crate::signer::{FileSigner, digest_of, rsa_public_key};
use crate::stub::stub_config;
use crate::tags::{DigestAlgorithm, HeaderTag};

/// AES block and key size in bytes.
const AES_LEN: usize = 16;
/// The plaintext padding byte (`\r`).
const PLAINTEXT_PAD: u8 = 0x0D;

/// A parsed `.enc.sgn`: the header (version 2.0, with its encryption
/// elements) and the ciphertext after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedConfig {
    /// The header.
    pub header: SignedHeader,
    /// Its encryption elements (tags 16 to 27).
    pub encryption: EncryptionInfo,
    bytes: Vec<u8>,
}

/// What [`encrypt_config`] writes: the encrypted config and the signed stub
/// that goes beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedConfigFiles {
    /// `<config name>.enc.sgn`.
    pub encrypted_name: String,
    /// Its bytes.
    pub encrypted: Vec<u8>,
    /// `<config name>.sgn`: the signed stub.
    pub stub_name: String,
    /// Its bytes.
    pub stub: Vec<u8>,
    /// Lower-case hex MD5 of the phone certificate's DER (the stub's
    /// `<certHash>`).
    pub cert_hash: String,
}

/// Lower-case hex MD5 of a certificate's DER: the `<certHash>` a stub gives
/// for the certificate its config was encrypted for.
pub fn cert_hash(certificate: &CaCertificate) -> String {
    hex::encode(Md5::digest(certificate.der()))
}

/// Encrypts `config` (the XML of `config_name`, e.g.
/// `SEP001122334455.cnf.xml`) for the phone certificate (its RSA LSC, or
/// its MIC), as `enccnf --build` does, with the operating system's RNG.
///
/// The `.enc.sgn` holds the config encrypted with AES-128-CBC (a fresh key
/// and IV; the plaintext padded with 1 to 16 `0x0D` bytes), the AES key
/// wrapped with the certificate's RSA key (PKCS#1 v1.5), the digest of the
/// plaintext, and is signed by `signer` (the TFTP-role key) over the header
/// and ciphertext. The stub is [`stub_config`] signed as `<config name>.sgn`.
/// Both headers carry `digest` (SHA-1 or SHA-512) and `timestamp`.
///
/// Fails with [`ProvisioningError::EcPhoneCertificate`] for an EC phone
/// certificate: no encryption to an EC key is known.
pub fn encrypt_config(
    signer: &FileSigner,
    phone_certificate: &CaCertificate,
    config_name: &str,
    config: &[u8],
    digest: DigestAlgorithm,
    timestamp: u32,
) -> Result<EncryptedConfigFiles> {
    encrypt_config_with_rng(
        signer,
        phone_certificate,
        config_name,
        config,
        digest,
        timestamp,
        &mut getrandom::SysRng,
    )
}

/// [`encrypt_config`] with the given RNG (for the IV, then the AES key, then
/// the RSA padding).
pub fn encrypt_config_with_rng<R: TryCryptoRng + ?Sized>(
    signer: &FileSigner,
    phone_certificate: &CaCertificate,
    config_name: &str,
    config: &[u8],
    digest: DigestAlgorithm,
    timestamp: u32,
    rng: &mut R,
) -> Result<EncryptedConfigFiles> {
    match key_algorithm(phone_certificate) {
        KeyAlgorithm::Rsa => {}
        KeyAlgorithm::Ec => {
            return Err(ProvisioningError::EcPhoneCertificate {
                subject: phone_certificate.subject(),
            });
        }
        KeyAlgorithm::Other(oid) => {
            return Err(ProvisioningError::UnsupportedKey {
                subject: phone_certificate.subject(),
                oid,
            });
        }
    }
    if !matches!(digest, DigestAlgorithm::Sha1 | DigestAlgorithm::Sha512) {
        return Err(ProvisioningError::UnsupportedDigest {
            place: Place::Header,
            digest,
        });
    }
    let phone_key = rsa_public_key(phone_certificate)?;
    // The stub first: it fails on a config that is not a <device> XML,
    // before anything random is drawn.
    let hash = cert_hash(phone_certificate);
    let stub = stub_config(config, &hash)?;

    let plaintext_digest = digest_of(digest, config, Place::Header)?;
    let mut iv = [0u8; AES_LEN];
    let mut key = [0u8; AES_LEN];
    let rng_error = |e: R::Error| ProvisioningError::Rng(e.to_string());
    rng.try_fill_bytes(&mut iv).map_err(rng_error)?;
    rng.try_fill_bytes(&mut key).map_err(rng_error)?;
    let pad = AES_LEN - config.len() % AES_LEN;
    let mut buf = Vec::with_capacity(config.len() + pad);
    buf.extend_from_slice(config);
    buf.resize(config.len() + pad, PLAINTEXT_PAD);
    let len = buf.len();
    cbc::Encryptor::<Aes128>::new(&key.into(), &iv.into())
        .encrypt_padded::<NoPadding>(&mut buf, len)
        .map_err(|e| ProvisioningError::Crypto {
            what: "AES-128-CBC encryption",
            reason: e.to_string(),
        })?;
    let wrapped =
        phone_key
            .encrypt(rng, Pkcs1v15Encrypt, &key)
            .map_err(|e| ProvisioningError::Crypto {
                what: "wrapping the AES key",
                reason: e.to_string(),
            })?;
    key.fill(0);

    let trailer = encryption_elements(&iv, pad, &wrapped, digest, &plaintext_digest)?;
    let encrypted_name = format!("{config_name}.enc.sgn");
    let encrypted = build_signed(
        &HeaderSpec {
            version: Version::V2_0,
            signer_version: None,
            digest,
            file_name: &encrypted_name,
            timestamp,
            trailer: &trailer,
        },
        signer,
        &buf,
    )?;
    let stub_name = format!("{config_name}.sgn");
    let stub = SignedFile::sign(signer, &stub_name, &stub, digest, timestamp)?;
    Ok(EncryptedConfigFiles {
        encrypted_name,
        encrypted,
        stub_name,
        stub,
        cert_hash: hash,
    })
}

/// Elements 16 to 27 as enccnf writes them: 16{17{18, 19, 20}, 21{22, 23, 24,
/// 25}}, 26, 27 (container 16 counts 17 and 21 with their content only).
fn encryption_elements(
    iv: &[u8],
    pad: usize,
    wrapped: &[u8],
    digest: DigestAlgorithm,
    plaintext_digest: &[u8],
) -> Result<Vec<u8>> {
    let too_long = |what: &str, length: usize| ProvisioningError::TooLong {
        what: what.into(),
        length,
    };
    let iv_info = 3 + 1 + 3 + iv.len() + 3 + 2;
    let key_info = 3 + 1 + 3 + 2 + 3 + 1 + 3 + wrapped.len();
    let info = 3 + iv_info + 3 + key_info;
    let key_bits = wrapped.len() * 8;
    let mut out = Vec::with_capacity(info + 8 + plaintext_digest.len());
    let container = |out: &mut Vec<u8>, tag: HeaderTag, len: usize| -> Result<()> {
        let len = u16::try_from(len).map_err(|_| too_long("encryption info", len))?;
        out.push(tag.code());
        out.extend_from_slice(&len.to_be_bytes());
        Ok(())
    };
    container(&mut out, HeaderTag::EncryptionInfo, info)?;
    container(&mut out, HeaderTag::EncryptionIvInfo, iv_info)?;
    put_element(&mut out, HeaderTag::EncryptionUnknown1.code(), &[0], None)?;
    put_element(&mut out, HeaderTag::EncryptionIv.code(), iv, None)?;
    let pad = u16::try_from(pad).map_err(|_| too_long("padding count", pad))?;
    put_element(
        &mut out,
        HeaderTag::EncryptionPadding.code(),
        &pad.to_be_bytes(),
        None,
    )?;
    container(&mut out, HeaderTag::EncryptionKeyInfo, key_info)?;
    put_element(&mut out, HeaderTag::EncryptionUnknown2.code(), &[0], None)?;
    let key_bits = u16::try_from(key_bits).map_err(|_| too_long("key size", key_bits))?;
    put_element(
        &mut out,
        HeaderTag::EncryptionKeySize.code(),
        &key_bits.to_be_bytes(),
        None,
    )?;
    put_element(
        &mut out,
        HeaderTag::EncryptionKeyAlgorithm.code(),
        &[1],
        None,
    )?;
    put_element(&mut out, HeaderTag::EncryptionKey.code(), wrapped, None)?;
    put_element(
        &mut out,
        HeaderTag::EncryptionHashAlgorithm.code(),
        &[digest.code()],
        None,
    )?;
    put_element(
        &mut out,
        HeaderTag::EncryptionHash.code(),
        plaintext_digest,
        None,
    )?;
    Ok(out)
}

impl EncryptedConfig {
    /// Reads an `.enc.sgn`. Neither the signature nor the encryption is
    /// checked: see [`verify`](Self::verify) and [`decrypt`](Self::decrypt).
    pub fn parse(bytes: &[u8]) -> Result<EncryptedConfig> {
        let header = SignedHeader::parse(bytes)?;
        let encryption = header
            .encryption
            .clone()
            .ok_or(ProvisioningError::NotEncrypted {
                tag: HeaderTag::EncryptionKey,
            })?;
        Ok(EncryptedConfig {
            header,
            encryption,
            bytes: bytes.to_vec(),
        })
    }

    /// The ciphertext: everything after the header.
    pub fn ciphertext(&self) -> &[u8] {
        self.bytes
            .get(usize::from(self.header.length)..)
            .unwrap_or_default()
    }

    /// The file's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Checks that `tftp` is the signer the header names, and the signature
    /// (over the header and the ciphertext).
    pub fn verify(&self, tftp: &CaCertificate) -> Result<()> {
        self.header.verify_signed_by(&self.bytes, tftp)
    }

    fn element_error(&self, tag: HeaderTag, problem: String) -> ProvisioningError {
        let offset = RawHeader::parse(&self.bytes)
            .ok()
            .and_then(|h| h.element(tag).map(|e| e.offset))
            .unwrap_or(0);
        ProvisioningError::BadEncryptionElement {
            offset,
            tag,
            problem,
        }
    }

    fn failed(&self, reason: impl Into<String>) -> ProvisioningError {
        ProvisioningError::DecryptionFailed {
            file_name: self.header.file_name.clone(),
            reason: reason.into(),
        }
    }

    /// Decrypts the config with the phone's private key (the key of the LSC
    /// or MIC it was encrypted for) and checks the plaintext digest.
    ///
    /// For tests and troubleshooting: the phone does this itself.
    pub fn decrypt(&self, phone_key: &PrivateKey) -> Result<Vec<u8>> {
        if let capf_ca::KeySpec::Ec(_) = phone_key.spec() {
            return Err(ProvisioningError::EcPhoneKey {
                spec: phone_key.spec(),
            });
        }
        let der = phone_key
            .to_pkcs8_der()
            .map_err(|e| ProvisioningError::Key {
                what: "phone private key".into(),
                reason: e.to_string(),
            })?;
        let key = RsaPrivateKey::from_pkcs8_der(&der).map_err(|e| ProvisioningError::Key {
            what: "phone private key".into(),
            reason: e.to_string(),
        })?;
        let enc = &self.encryption;
        if enc.wrapped_key.len() != key.size() {
            return Err(self.failed(format!(
                "the wrapped key is {} bytes but the key is {} bits: not the key this config was encrypted for",
                enc.wrapped_key.len(),
                key.size() * 8
            )));
        }
        let iv: [u8; AES_LEN] = enc.iv.as_slice().try_into().map_err(|_| {
            self.element_error(
                HeaderTag::EncryptionIv,
                format!("the IV is {} bytes, not 16", enc.iv.len()),
            )
        })?;
        let ciphertext = self.ciphertext();
        if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(AES_LEN) {
            return Err(ProvisioningError::Truncated {
                offset: usize::from(self.header.length),
                what: "ciphertext (a whole number of 16-byte blocks)",
                needed: AES_LEN - ciphertext.len() % AES_LEN,
            });
        }
        let pad = usize::from(enc.padding);
        if pad == 0 || pad > AES_LEN {
            return Err(self.element_error(
                HeaderTag::EncryptionPadding,
                format!("padding count {pad}, expected 1 to 16"),
            ));
        }
        // PKCS#1 v1.5 decryption with implicit rejection: a wrong key gives
        // a pseudo-random message, caught by its length or the digest below.
        let aes_key = key
            .decrypt(Pkcs1v15Encrypt, &enc.wrapped_key)
            .map_err(|e| self.failed(format!("unwrapping the AES key: {e}")))?;
        let aes_key: [u8; AES_LEN] = aes_key.as_slice().try_into().map_err(|_| {
            self.failed("the unwrapped key is not a 16-byte AES key: not the key this config was encrypted for")
        })?;
        let mut buf = ciphertext.to_vec();
        let plain_len = cbc::Decryptor::<Aes128>::new(&aes_key.into(), &iv.into())
            .decrypt_padded::<NoPadding>(&mut buf)
            .map_err(|e| self.failed(format!("AES-128-CBC: {e}")))?
            .len();
        buf.truncate(plain_len.saturating_sub(pad));
        let digest = digest_of(enc.digest, &buf, Place::Header)?;
        if digest != enc.plaintext_digest {
            return Err(self.failed(
                "the plaintext digest does not match: not the key this config was encrypted for, or a damaged file",
            ));
        }
        Ok(buf)
    }
}
