//! Typed messages: one struct per command in use, with typed fields.
//!
//! Reading is tolerant: elements may come in any order, unknown tags are
//! skipped, a missing VERSION is not an error. A known tag appearing twice is
//! an error (two device names are an attack, not a variant). Writing is
//! strict: elements go out in the order the open peers write them, and only
//! with tags the receiving side is known to accept
//! ([`crate::Direction::accepted_tags`]).

use bytes::Bytes;

use crate::frame::{ELEMENT_HEADER_LEN, Element, HEADER_LEN};
use crate::values::{nul_terminated, read_nul_terminated, read_u8, read_u16};
use crate::{
    AuthType, CertificateType, Command, Curve, Direction, Frame, KeyType, Password, Reason,
    Sha2SignedData, SudiData, Tag, WireError, WrappedCertificate,
};

/// The protocol version capfd and CUCM send, and that capfd v4.1 requires.
pub const PROTOCOL_VERSION: u8 = 3;

/// AUTH_REQUEST (server to phone): the first message of every session.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AuthRequest {
    /// VERSION; capfd and CUCM send 3.
    pub version: Option<u8>,
    /// AUTH_TYPE; capfd always sends 0, CUCM (to Jabber) omits it.
    pub auth_type: Option<AuthType>,
}

impl AuthRequest {
    /// What capfd sends: VERSION=3, AUTH_TYPE=0.
    pub fn capfd() -> Self {
        AuthRequest {
            version: Some(PROTOCOL_VERSION),
            auth_type: Some(AuthType::None),
        }
    }
}

/// AUTH_RESPONSE (phone to server): who the phone is and its proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthResponse {
    /// REASON; phones send 1.
    pub reason: Option<Reason>,
    /// VERSION; capfc echoes 3, Jabber sends 2, may be missing.
    pub version: Option<u8>,
    /// DEVICE_NAME without its NUL, e.g. `SEP001122334455`.
    pub device_name: String,
    /// PASSWORD (the authentication string; empty for the null string).
    pub password: Option<Password>,
    /// CERTIFICATE: the LSC or MIC the phone authenticates with.
    pub certificate: Option<WrappedCertificate>,
    /// SIGNED_DATA: SHA-1 signature over `device name || 00 || cert DER`.
    pub signed_data: Option<Bytes>,
    /// SHA2_SIGNED_DATA: the SHA-512 signature over the same.
    pub sha2_signed_data: Option<Sha2SignedData>,
    /// SUDI_DATA.
    pub sudi: Option<SudiData>,
}

impl AuthResponse {
    /// A response as capfc sends it: REASON=1, VERSION=3, the password (empty
    /// for the null string) and the device name.
    pub fn with_password(device_name: impl Into<String>, password: Password) -> Self {
        AuthResponse {
            reason: Some(Reason::SUCCESS),
            version: Some(PROTOCOL_VERSION),
            device_name: device_name.into(),
            password: Some(password),
            certificate: None,
            signed_data: None,
            sha2_signed_data: None,
            sudi: None,
        }
    }
}

/// KEY_GENERATE_REQUEST (server to phone): generate a key pair.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KeyGenerateRequest {
    /// KEY_SIZE: RSA modulus bits.
    pub key_size: Option<u16>,
    /// KEY_TYPE; CUCM omits it (meaning RSA).
    pub key_type: Option<KeyType>,
    /// CURVE, for EC keys.
    pub curve: Option<Curve>,
}

/// The key a [`KeyGenerateRequest`] asks for, with the defaults real peers
/// rely on applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestedKey {
    /// An RSA key of this many bits.
    Rsa(u16),
    /// An EC key on this curve.
    Ec(Curve),
}

impl KeyGenerateRequest {
    /// Ask for RSA, as capfd does: KEY_SIZE then KEY_TYPE=0.
    pub fn rsa(bits: u16) -> Self {
        KeyGenerateRequest {
            key_size: Some(bits),
            key_type: Some(KeyType::Rsa),
            curve: None,
        }
    }

    /// Ask for EC, as capfd does: KEY_TYPE=1 then CURVE.
    pub fn ec(curve: Curve) -> Self {
        KeyGenerateRequest {
            key_size: None,
            key_type: Some(KeyType::Ec),
            curve: Some(curve),
        }
    }

    /// What is asked for. KEY_TYPE absent means RSA (CUCM omits it); RSA
    /// without KEY_SIZE means 2048. `None` for an unknown key type or an EC
    /// request without a curve.
    pub fn requested(&self) -> Option<RequestedKey> {
        match self.key_type.unwrap_or(KeyType::Rsa) {
            KeyType::Rsa => Some(RequestedKey::Rsa(self.key_size.unwrap_or(2048))),
            KeyType::Ec => self.curve.map(RequestedKey::Ec),
            KeyType::Unknown(_) => None,
        }
    }
}

impl From<RequestedKey> for KeyGenerateRequest {
    fn from(k: RequestedKey) -> Self {
        match k {
            RequestedKey::Rsa(bits) => KeyGenerateRequest::rsa(bits),
            RequestedKey::Ec(curve) => KeyGenerateRequest::ec(curve),
        }
    }
}

/// KEY_GENERATE_RESPONSE (phone to server): the new public key, or a reason
/// for failing to make one.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KeyGenerateResponse {
    /// REASON, sent on failure.
    pub reason: Option<Reason>,
    /// PUBLIC_KEY: DER SubjectPublicKeyInfo.
    pub public_key: Option<Bytes>,
}

/// STORE_CERTIFICATE_REQUEST (server to phone): here is your certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreCertificateRequest {
    /// CERTIFICATE_TYPE; capfd sends 1 (LSC).
    pub certificate_type: Option<CertificateType>,
    /// The certificate.
    pub certificate: WrappedCertificate,
}

impl StoreCertificateRequest {
    /// An LSC, as capfd sends it.
    pub fn lsc(der: impl Into<Bytes>) -> Self {
        StoreCertificateRequest {
            certificate_type: Some(CertificateType::Lsc),
            certificate: WrappedCertificate::lsc(der),
        }
    }
}

/// A response that carries only a REASON (STORE and DELETE responses,
/// END_SESSION).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReasonOnly {
    /// The REASON.
    pub reason: Reason,
}

/// FETCH_CERTIFICATE_REQUEST (server to phone): send me your certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FetchCertificateRequest {
    /// CERTIFICATE_TYPE; capfd sends none. How CUCM asks for the MIC rather
    /// than the LSC is not known.
    pub certificate_type: Option<CertificateType>,
}

/// FETCH_CERTIFICATE_RESPONSE (phone to server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchCertificateResponse {
    /// REASON: 1 = here it is, 7 = none.
    pub reason: Reason,
    /// The certificate, when REASON is 1.
    pub certificate: Option<WrappedCertificate>,
}

/// A CAPF message: a frame's command and elements read into typed fields.
///
/// The session id travels in the frame header and is not part of the
/// message: see [`Message::to_frame`] and [`Message::from_frame`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// AUTH_REQUEST.
    AuthRequest(AuthRequest),
    /// AUTH_RESPONSE (boxed: it is by far the largest).
    AuthResponse(Box<AuthResponse>),
    /// KEY_GENERATE_REQUEST.
    KeyGenerateRequest(KeyGenerateRequest),
    /// KEY_GENERATE_RESPONSE.
    KeyGenerateResponse(KeyGenerateResponse),
    /// REQUEST_IN_PROGRESS (empty).
    RequestInProgress,
    /// STORE_CERTIFICATE_REQUEST.
    StoreCertificateRequest(StoreCertificateRequest),
    /// STORE_CERTIFICATE_RESPONSE.
    StoreCertificateResponse(ReasonOnly),
    /// FETCH_CERTIFICATE_REQUEST.
    FetchCertificateRequest(FetchCertificateRequest),
    /// FETCH_CERTIFICATE_RESPONSE.
    FetchCertificateResponse(FetchCertificateResponse),
    /// DELETE_CERTIFICATE_REQUEST (empty).
    DeleteCertificateRequest,
    /// DELETE_CERTIFICATE_RESPONSE.
    DeleteCertificateResponse(ReasonOnly),
    /// END_SESSION.
    EndSession(ReasonOnly),
    /// A command no open implementation uses (or an unknown one), kept as
    /// its raw frame.
    Other(Frame),
}

impl Message {
    /// An END_SESSION with this reason.
    pub fn end_session(reason: Reason) -> Self {
        Message::EndSession(ReasonOnly { reason })
    }

    /// The command this message travels as.
    pub fn command(&self) -> Command {
        match self {
            Message::AuthRequest(_) => Command::AuthRequest,
            Message::AuthResponse(_) => Command::AuthResponse,
            Message::KeyGenerateRequest(_) => Command::KeyGenerateRequest,
            Message::KeyGenerateResponse(_) => Command::KeyGenerateResponse,
            Message::RequestInProgress => Command::RequestInProgress,
            Message::StoreCertificateRequest(_) => Command::StoreCertificateRequest,
            Message::StoreCertificateResponse(_) => Command::StoreCertificateResponse,
            Message::FetchCertificateRequest(_) => Command::FetchCertificateRequest,
            Message::FetchCertificateResponse(_) => Command::FetchCertificateResponse,
            Message::DeleteCertificateRequest => Command::DeleteCertificateRequest,
            Message::DeleteCertificateResponse(_) => Command::DeleteCertificateResponse,
            Message::EndSession(_) => Command::EndSession,
            Message::Other(frame) => frame.command,
        }
    }

    /// Which way this message travels, or `None` for [`Message::Other`].
    pub fn direction(&self) -> Option<Direction> {
        use Direction::{PhoneToServer, ServerToPhone};
        Some(match self {
            Message::AuthRequest(_)
            | Message::KeyGenerateRequest(_)
            | Message::StoreCertificateRequest(_)
            | Message::FetchCertificateRequest(_)
            | Message::DeleteCertificateRequest
            | Message::EndSession(_) => ServerToPhone,
            Message::AuthResponse(_)
            | Message::KeyGenerateResponse(_)
            | Message::RequestInProgress
            | Message::StoreCertificateResponse(_)
            | Message::FetchCertificateResponse(_)
            | Message::DeleteCertificateResponse(_) => PhoneToServer,
            Message::Other(_) => return None,
        })
    }

    /// Reads a frame's elements into a typed message.
    pub fn from_frame(frame: &Frame) -> Result<Message, WireError> {
        let command = frame.command;
        let mut r = Fields::new(frame);
        let message = match command {
            Command::AuthRequest => {
                let (mut version, mut auth_type) = (None, None);
                while let Some((offset, e)) = r.next()? {
                    match e.tag {
                        Tag::Version => version = Some(read_u8(e.tag, &e.value, offset)?),
                        Tag::AuthType => {
                            auth_type = Some(AuthType::from(read_u8(e.tag, &e.value, offset)?))
                        }
                        _ => {}
                    }
                }
                Message::AuthRequest(AuthRequest { version, auth_type })
            }
            Command::AuthResponse => {
                let mut m = AuthResponse::with_password("", Password::empty());
                m.reason = None;
                m.version = None;
                m.password = None;
                let mut device_name = None;
                while let Some((offset, e)) = r.next()? {
                    let v = &e.value;
                    match e.tag {
                        Tag::Reason => m.reason = Some(Reason::from(read_u8(e.tag, v, offset)?)),
                        Tag::Version => m.version = Some(read_u8(e.tag, v, offset)?),
                        Tag::DeviceName => {
                            let text = read_nul_terminated(e.tag, v, offset)?;
                            let name = std::str::from_utf8(text)
                                .map_err(|_| WireError::NotText { offset, tag: e.tag })?;
                            device_name = Some(name.to_owned());
                        }
                        Tag::Password => {
                            let text = read_nul_terminated(e.tag, v, offset)?;
                            m.password = Some(Password::new(v.slice_ref(text)));
                        }
                        Tag::Certificate => {
                            m.certificate = Some(WrappedCertificate::decode(v, offset)?)
                        }
                        Tag::SignedData => m.signed_data = Some(v.clone()),
                        Tag::Sha2SignedData => {
                            m.sha2_signed_data = Some(Sha2SignedData::decode(v, offset)?)
                        }
                        Tag::SudiData => m.sudi = Some(SudiData::decode(v, offset)?),
                        _ => {}
                    }
                }
                m.device_name = device_name.ok_or(WireError::MissingElement {
                    command,
                    tag: Tag::DeviceName,
                })?;
                Message::AuthResponse(Box::new(m))
            }
            Command::KeyGenerateRequest => {
                let mut m = KeyGenerateRequest::default();
                while let Some((offset, e)) = r.next()? {
                    let v = &e.value;
                    match e.tag {
                        Tag::KeySize => m.key_size = Some(read_u16(e.tag, v, offset)?),
                        Tag::KeyType => {
                            m.key_type = Some(KeyType::from(read_u8(e.tag, v, offset)?))
                        }
                        Tag::Curve => m.curve = Some(Curve::from(read_u8(e.tag, v, offset)?)),
                        _ => {}
                    }
                }
                Message::KeyGenerateRequest(m)
            }
            Command::KeyGenerateResponse => {
                let mut m = KeyGenerateResponse::default();
                while let Some((offset, e)) = r.next()? {
                    match e.tag {
                        Tag::Reason => {
                            m.reason = Some(Reason::from(read_u8(e.tag, &e.value, offset)?))
                        }
                        Tag::PublicKey => m.public_key = Some(e.value.clone()),
                        _ => {}
                    }
                }
                Message::KeyGenerateResponse(m)
            }
            Command::RequestInProgress => {
                r.skip_all()?;
                Message::RequestInProgress
            }
            Command::StoreCertificateRequest => {
                let (mut certificate_type, mut certificate) = (None, None);
                while let Some((offset, e)) = r.next()? {
                    match e.tag {
                        Tag::CertificateType => {
                            certificate_type =
                                Some(CertificateType::from(read_u8(e.tag, &e.value, offset)?))
                        }
                        Tag::Certificate => {
                            certificate = Some(WrappedCertificate::decode(&e.value, offset)?)
                        }
                        _ => {}
                    }
                }
                Message::StoreCertificateRequest(StoreCertificateRequest {
                    certificate_type,
                    certificate: certificate.ok_or(WireError::MissingElement {
                        command,
                        tag: Tag::Certificate,
                    })?,
                })
            }
            Command::FetchCertificateRequest => {
                let mut certificate_type = None;
                while let Some((offset, e)) = r.next()? {
                    if e.tag == Tag::CertificateType {
                        certificate_type =
                            Some(CertificateType::from(read_u8(e.tag, &e.value, offset)?));
                    }
                }
                Message::FetchCertificateRequest(FetchCertificateRequest { certificate_type })
            }
            Command::FetchCertificateResponse => {
                let (mut reason, mut certificate) = (None, None);
                while let Some((offset, e)) = r.next()? {
                    match e.tag {
                        Tag::Reason => {
                            reason = Some(Reason::from(read_u8(e.tag, &e.value, offset)?))
                        }
                        Tag::Certificate => {
                            certificate = Some(WrappedCertificate::decode(&e.value, offset)?)
                        }
                        _ => {}
                    }
                }
                Message::FetchCertificateResponse(FetchCertificateResponse {
                    reason: reason.ok_or(WireError::MissingElement {
                        command,
                        tag: Tag::Reason,
                    })?,
                    certificate,
                })
            }
            Command::DeleteCertificateRequest => {
                r.skip_all()?;
                Message::DeleteCertificateRequest
            }
            Command::StoreCertificateResponse => {
                Message::StoreCertificateResponse(r.reason_only()?)
            }
            Command::DeleteCertificateResponse => {
                Message::DeleteCertificateResponse(r.reason_only()?)
            }
            Command::EndSession => Message::EndSession(r.reason_only()?),
            _ => Message::Other(frame.clone()),
        };
        Ok(message)
    }

    /// The frame for this message in session `session_id`, elements in the
    /// order the open peers write them.
    pub fn to_frame(&self, session_id: u32) -> Result<Frame, WireError> {
        let mut f = Frame::new(self.command(), session_id);
        let mut push = |tag: Tag, value: Bytes| f.elements.push(Element { tag, value });
        let byte = |v: u8| Bytes::copy_from_slice(&[v]);
        match self {
            Message::AuthRequest(m) => {
                if let Some(v) = m.version {
                    push(Tag::Version, byte(v));
                }
                if let Some(t) = m.auth_type {
                    push(Tag::AuthType, byte(t.to_u8()));
                }
            }
            Message::AuthResponse(m) => {
                // capfc's order: REASON, [CERTIFICATE, SIGNED_DATA], VERSION,
                // PASSWORD, DEVICE_NAME, [SUDI_DATA], [SHA2_SIGNED_DATA].
                if let Some(r) = m.reason {
                    push(Tag::Reason, byte(r.to_u8()));
                }
                if let Some(c) = &m.certificate {
                    push(Tag::Certificate, c.encode()?);
                }
                if let Some(s) = &m.signed_data {
                    push(Tag::SignedData, s.clone());
                }
                if let Some(v) = m.version {
                    push(Tag::Version, byte(v));
                }
                if let Some(p) = &m.password {
                    push(Tag::Password, nul_terminated(p.expose()));
                }
                push(Tag::DeviceName, nul_terminated(m.device_name.as_bytes()));
                if let Some(s) = &m.sudi {
                    push(Tag::SudiData, s.encode()?);
                }
                if let Some(s) = &m.sha2_signed_data {
                    push(Tag::Sha2SignedData, s.encode()?);
                }
            }
            Message::KeyGenerateRequest(m) => {
                if let Some(size) = m.key_size {
                    push(Tag::KeySize, Bytes::copy_from_slice(&size.to_be_bytes()));
                }
                if let Some(t) = m.key_type {
                    push(Tag::KeyType, byte(t.to_u8()));
                }
                if let Some(c) = m.curve {
                    push(Tag::Curve, byte(c.to_u8()));
                }
            }
            Message::KeyGenerateResponse(m) => {
                if let Some(r) = m.reason {
                    push(Tag::Reason, byte(r.to_u8()));
                }
                if let Some(k) = &m.public_key {
                    push(Tag::PublicKey, k.clone());
                }
            }
            Message::StoreCertificateRequest(m) => {
                if let Some(t) = m.certificate_type {
                    push(Tag::CertificateType, byte(t.to_u8()));
                }
                push(Tag::Certificate, m.certificate.encode()?);
            }
            Message::FetchCertificateRequest(m) => {
                if let Some(t) = m.certificate_type {
                    push(Tag::CertificateType, byte(t.to_u8()));
                }
            }
            Message::FetchCertificateResponse(m) => {
                push(Tag::Reason, byte(m.reason.to_u8()));
                if let Some(c) = &m.certificate {
                    push(Tag::Certificate, c.encode()?);
                }
            }
            Message::StoreCertificateResponse(m)
            | Message::DeleteCertificateResponse(m)
            | Message::EndSession(m) => push(Tag::Reason, byte(m.reason.to_u8())),
            Message::RequestInProgress | Message::DeleteCertificateRequest => {}
            Message::Other(frame) => {
                let mut frame = frame.clone();
                frame.session_id = session_id;
                return Ok(frame);
            }
        }
        if f.body_len() > crate::frame::MAX_BODY_LEN {
            return Err(WireError::BodyTooLong {
                command: f.command,
                length: f.body_len(),
            });
        }
        Ok(f)
    }

    /// Encodes the message as one whole frame (header and body in one
    /// buffer, for one write).
    pub fn encode(&self, session_id: u32, dst: &mut bytes::BytesMut) -> Result<(), WireError> {
        self.to_frame(session_id)?.encode(dst)
    }
}

/// Walks a frame's elements with their offsets, refusing a known tag seen
/// twice.
struct Fields<'a> {
    frame: &'a Frame,
    index: usize,
    offset: u64,
    seen: [bool; 256],
}

impl<'a> Fields<'a> {
    fn new(frame: &'a Frame) -> Self {
        Fields {
            frame,
            index: 0,
            offset: HEADER_LEN as u64,
            seen: [false; 256],
        }
    }

    fn next(&mut self) -> Result<Option<(u64, &'a Element)>, WireError> {
        let Some(e) = self.frame.elements.get(self.index) else {
            return Ok(None);
        };
        let offset = self.offset;
        self.index += 1;
        self.offset += (ELEMENT_HEADER_LEN + e.value.len()) as u64;
        let seen = &mut self.seen[usize::from(e.tag.to_u8())];
        if !e.tag.is_unknown() && *seen {
            return Err(WireError::DuplicateElement {
                offset,
                command: self.frame.command,
                tag: e.tag,
            });
        }
        *seen = true;
        Ok(Some((offset, e)))
    }

    fn skip_all(&mut self) -> Result<(), WireError> {
        while self.next()?.is_some() {}
        Ok(())
    }

    fn reason_only(&mut self) -> Result<ReasonOnly, WireError> {
        let mut reason = None;
        while let Some((offset, e)) = self.next()? {
            if e.tag == Tag::Reason {
                reason = Some(Reason::from(read_u8(e.tag, &e.value, offset)?));
            }
        }
        Ok(ReasonOnly {
            reason: reason.ok_or(WireError::MissingElement {
                command: self.frame.command,
                tag: Tag::Reason,
            })?,
        })
    }
}
