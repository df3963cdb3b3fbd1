//! Signed files (`<name>.sgn`): the header, then the original bytes.

use capf_ca::CaCertificate;

use crate::error::Result;
use crate::header::{HeaderSpec, SignedHeader, Version, build_signed};
use crate::signer::FileSigner;
use crate::tags::DigestAlgorithm;

/// A parsed `.sgn` file: the header and the payload (the original file,
/// unchanged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedFile {
    /// The header (version 1.0, no signer version, no records).
    pub header: SignedHeader,
    bytes: Vec<u8>,
}

impl SignedFile {
    /// Reads a signed file. The signature is not checked: see
    /// [`verify`](Self::verify).
    pub fn parse(bytes: &[u8]) -> Result<SignedFile> {
        Ok(SignedFile {
            header: SignedHeader::parse(bytes)?,
            bytes: bytes.to_vec(),
        })
    }

    /// The payload: everything after the header ("unsigning" the file).
    pub fn payload(&self) -> &[u8] {
        self.bytes
            .get(usize::from(self.header.length)..)
            .unwrap_or_default()
    }

    /// The file's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Checks that `tftp` (the TFTP-role certificate, which the file does not
    /// carry) is the signer the header names, and the signature.
    pub fn verify(&self, tftp: &CaCertificate) -> Result<()> {
        self.header.verify_signed_by(&self.bytes, tftp)
    }

    /// Signs `payload` as `sgnfile --build` does, byte for byte.
    ///
    /// `file_name` is tag 14, the name the phone asks for, `.sgn` included
    /// (`SEP001122334455.cnf.xml.sgn`, or a path such as
    /// `Desktops/320x196x4/List.xml.sgn`). `digest` is SHA-1 (the default of
    /// the tools) or SHA-512; `timestamp` is Unix seconds.
    pub fn sign(
        signer: &FileSigner,
        file_name: &str,
        payload: &[u8],
        digest: DigestAlgorithm,
        timestamp: u32,
    ) -> Result<Vec<u8>> {
        build_signed(
            &HeaderSpec {
                version: Version::V1_0,
                signer_version: None,
                digest,
                file_name,
                timestamp,
                trailer: &[],
            },
            signer,
            payload,
        )
    }
}
