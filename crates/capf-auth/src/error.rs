//! The crate's one error type.

use crate::Operation;

/// Everything that can go wrong in `capf-auth`.
///
/// Decisions about a phone never produce an error: a refused phone is a
/// [`Refusal`](crate::Refusal), not an `AuthError`. Errors are for operator
/// input (a malformed authentication string, an unknown name, an operation
/// that cannot be scheduled) and for the operating system's random number
/// generator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// An authentication string must have 4 to 10 digits.
    #[error(
        "authentication string has {len} characters; it must have {min} to {max} digits",
        min = crate::AuthString::MIN_LEN,
        max = crate::AuthString::MAX_LEN
    )]
    AuthStringLength {
        /// How many characters (bytes) were given.
        len: usize,
    },
    /// An authentication string may hold only the ASCII digits `0`-`9`.
    ///
    /// The offending character is deliberately not included: the input is
    /// a secret being typed by an operator.
    #[error(
        "authentication string has a non-digit at position {position} (0-based); only 0-9 are allowed"
    )]
    AuthStringNotDigit {
        /// 0-based byte position of the first non-digit.
        position: usize,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Rng(String),
    /// A name that is not one of the known names of a kind.
    #[error("unknown {kind} {name:?}; expected one of: {expected}")]
    UnknownName {
        /// What was being parsed, e.g. `"authentication mode"`.
        kind: &'static str,
        /// The name that was given.
        name: String,
        /// The accepted names, comma separated.
        expected: &'static str,
    },
    /// Delete needs an LSC on the phone; troubleshoot needs an LSC or a MIC.
    #[error("operation {operation} cannot be scheduled: the device has no {needs} on record")]
    OperationNeedsCertificate {
        /// The operation that was refused.
        operation: Operation,
        /// What it needs, e.g. `"LSC"` or `"LSC or MIC"`.
        needs: &'static str,
    },
    /// The wrong-string limit must be at least 1.
    #[error("the failed authentication string limit must be at least 1")]
    ZeroFailureLimit,
}
