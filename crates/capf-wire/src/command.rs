//! CAPF command codes (the second byte of every frame header).

use std::fmt;

macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $wire_name:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A code this crate does not know; kept so that it round-trips.
            Unknown(u8),
        }

        impl $name {
            /// Every code this crate knows, in numeric order.
            pub const KNOWN: &'static [$name] = &[ $( $name::$variant, )* ];

            /// The code as it travels on the wire.
            pub const fn to_u8(self) -> u8 {
                match self {
                    $( $name::$variant => $value, )*
                    $name::Unknown(v) => v,
                }
            }

            /// The upper-case name used by the open implementations (and in
            /// transcripts), or `None` for an unknown code.
            pub const fn wire_name(self) -> Option<&'static str> {
                match self {
                    $( $name::$variant => Some($wire_name), )*
                    $name::Unknown(_) => None,
                }
            }

            /// Whether this is a code this crate does not know.
            pub const fn is_unknown(self) -> bool {
                matches!(self, $name::Unknown(_))
            }
        }

        impl From<u8> for $name {
            fn from(v: u8) -> Self {
                match v {
                    $( $value => $name::$variant, )*
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                v.to_u8()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.wire_name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "UNKNOWN({})", self.to_u8()),
                }
            }
        }
    };
}

pub(crate) use open_enum;

open_enum! {
    /// A CAPF command (the second byte of a frame header).
    ///
    /// The enum is open: a code this crate does not know decodes to
    /// [`Command::Unknown`] and encodes back to the same byte.
    pub enum Command {
        /// Server asks the phone to authenticate (first message of a session).
        AuthRequest = 1 => "AUTH_REQUEST",
        /// Phone identifies itself and presents its proof.
        AuthResponse = 2 => "AUTH_RESPONSE",
        /// Server asks the phone to generate a key pair.
        KeyGenerateRequest = 3 => "KEY_GENERATE_REQUEST",
        /// Phone returns its new public key (or a failure reason).
        KeyGenerateResponse = 4 => "KEY_GENERATE_RESPONSE",
        /// Never used by any open code (5 is the *response*, 6 the request).
        EncryptResponse = 5 => "ENCRYPT_RESPONSE",
        /// Never used by any open code.
        EncryptRequest = 6 => "ENCRYPT_REQUEST",
        /// Never used by any open code.
        DecryptRequest = 7 => "DECRYPT_REQUEST",
        /// Never used by any open code.
        DecryptResponse = 8 => "DECRYPT_RESPONSE",
        /// Server hands the phone its new certificate.
        StoreCertificateRequest = 9 => "STORE_CERTIFICATE_REQUEST",
        /// Phone says whether it stored the certificate.
        StoreCertificateResponse = 10 => "STORE_CERTIFICATE_RESPONSE",
        /// Server asks the phone for its certificate (troubleshoot).
        FetchCertificateRequest = 11 => "FETCH_CERTIFICATE_REQUEST",
        /// Phone returns its certificate, or says it has none.
        FetchCertificateResponse = 12 => "FETCH_CERTIFICATE_RESPONSE",
        /// Server asks the phone to delete its LSC.
        DeleteCertificateRequest = 13 => "DELETE_CERTIFICATE_REQUEST",
        /// Phone says whether it deleted its LSC.
        DeleteCertificateResponse = 14 => "DELETE_CERTIFICATE_RESPONSE",
        /// Server ends the session with a reason (last message of every session).
        EndSession = 15 => "END_SESSION",
        /// Never used by any open code; probably carries RETRY_DELAY.
        RetryLater = 16 => "RETRY_LATER",
        /// Phone says it is generating its key (empty body).
        RequestInProgress = 17 => "REQUEST_IN_PROGRESS",
        /// Never used by any open code.
        StatusRequest = 18 => "STATUS_REQUEST",
        /// Never used by any open code.
        StatusResponse = 19 => "STATUS_RESPONSE",
        /// Never used by any open code.
        AbortRequest = 20 => "ABORT_REQUEST",
        /// Never used by any open code.
        AbortResponse = 21 => "ABORT_RESPONSE",
        /// Never used by any open code.
        SignCertificateRequest = 22 => "SIGN_CERTIFICATE_REQUEST",
        /// Never used by any open code.
        SignCertificateResponse = 23 => "SIGN_CERTIFICATE_RESPONSE",
    }
}

impl Command {
    /// Looks a command up by its upper-case wire name (`"END_SESSION"`).
    pub fn from_wire_name(name: &str) -> Option<Command> {
        Command::KNOWN
            .iter()
            .copied()
            .find(|c| c.wire_name() == Some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_23_known_commands_round_trip() {
        assert_eq!(Command::KNOWN.len(), 23);
        for (i, c) in Command::KNOWN.iter().enumerate() {
            assert_eq!(usize::from(c.to_u8()), i + 1);
            assert_eq!(Command::from(c.to_u8()), *c);
        }
    }

    #[test]
    fn unknown_commands_round_trip() {
        for v in [0u8, 24, 99, 255] {
            let c = Command::from(v);
            assert_eq!(c, Command::Unknown(v));
            assert_eq!(u8::from(c), v);
            assert_eq!(c.to_string(), format!("UNKNOWN({v})"));
        }
    }

    #[test]
    fn names() {
        assert_eq!(Command::EndSession.to_string(), "END_SESSION");
        assert_eq!(
            Command::from_wire_name("REQUEST_IN_PROGRESS"),
            Some(Command::RequestInProgress)
        );
    }
}
