#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod codec;
mod command;
mod error;
mod frame;
mod message;
mod tag;
mod values;

pub use codec::{FrameCodec, decode_all};
pub use command::Command;
pub use error::WireError;
pub use frame::{
    ELEMENT_HEADER_LEN, Element, Frame, HEADER_LEN, Header, MAX_BODY_LEN, PROTOCOL_ID,
};
pub use message::{
    AuthRequest, AuthResponse, FetchCertificateRequest, FetchCertificateResponse,
    KeyGenerateRequest, KeyGenerateResponse, Message, PROTOCOL_VERSION, ReasonOnly, RequestedKey,
    StoreCertificateRequest,
};
pub use tag::{ACCEPTED_BY_PHONES, ACCEPTED_BY_SERVERS, Direction, Tag};
pub use values::{
    AuthType, CertificateType, Curve, HashId, KeyType, Password, Reason, Sha2SignedData, SudiData,
    WrappedCertificate,
};
