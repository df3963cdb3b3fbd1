//! One-time authentication strings: 4 to 10 digits, typed on the phone by
//! the user, good for one successful operation.

use std::fmt;
use std::str::FromStr;

use rand_core::TryCryptoRng;
use subtle::ConstantTimeEq;

use crate::AuthError;

/// A 4 to 10 digit authentication string.
///
/// * Parse one the operator typed with [`FromStr`] (`"123456".parse()`), or
///   draw one with [`AuthString::generate`] (the admin page's "generate
///   string").
/// * [`Debug`](fmt::Debug) and [`Display`](fmt::Display) never show the
///   digits, nor how many there are: they print `AuthString(******)` and
///   `******`. The one way to read the digits is [`AuthString::expose`], for
///   the places where the operator must see them (the CAPF report, the
///   answer to "generate") and for the store that persists them.
/// * Comparison with what a phone sent ([`AuthString::matches`]) and
///   equality between two strings take time independent of the digits and
///   of the armed string's length.
///
/// The digits are kept in a fixed 10-byte buffer, wiped (zeroize) when the
/// value is dropped.
#[derive(Clone)]
pub struct AuthString {
    digits: [u8; AuthString::MAX_LEN],
    len: u8,
}

impl Drop for AuthString {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.digits);
    }
}

impl AuthString {
    /// Fewest digits an authentication string may have.
    pub const MIN_LEN: usize = 4;
    /// Most digits an authentication string may have.
    pub const MAX_LEN: usize = 10;

    /// Checks and copies `bytes` (4 to 10 ASCII digits).
    ///
    /// # Errors
    /// [`AuthError::AuthStringLength`] or [`AuthError::AuthStringNotDigit`].
    pub fn from_digits(bytes: &[u8]) -> Result<Self, AuthError> {
        let len = bytes.len();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(AuthError::AuthStringLength { len });
        }
        if let Some(position) = bytes.iter().position(|b| !b.is_ascii_digit()) {
            return Err(AuthError::AuthStringNotDigit { position });
        }
        let mut digits = [0u8; Self::MAX_LEN];
        digits[..len].copy_from_slice(bytes);
        Ok(AuthString {
            digits,
            // len <= MAX_LEN = 10, so it fits.
            len: u8::try_from(len).map_err(|_| AuthError::AuthStringLength { len })?,
        })
    }

    /// Draws a string of `len` uniformly random digits from the operating
    /// system's CSPRNG.
    ///
    /// # Errors
    /// [`AuthError::AuthStringLength`] if `len` is not 4 to 10;
    /// [`AuthError::Rng`] if the operating system cannot provide randomness.
    pub fn generate(len: usize) -> Result<Self, AuthError> {
        Self::generate_with(&mut getrandom::SysRng, len)
    }

    /// Like [`AuthString::generate`], with a caller-supplied cryptographic
    /// RNG.
    ///
    /// Each digit comes from one random byte by rejection sampling: bytes
    /// 250..=255 are discarded, so `byte % 10` is exactly uniform (no modulo
    /// bias).
    ///
    /// # Errors
    /// As [`AuthString::generate`].
    pub fn generate_with<R>(rng: &mut R, len: usize) -> Result<Self, AuthError>
    where
        R: TryCryptoRng + ?Sized,
    {
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(AuthError::AuthStringLength { len });
        }
        let mut digits = [0u8; Self::MAX_LEN];
        let mut filled = 0;
        let mut pool = [0u8; 32];
        while filled < len {
            rng.try_fill_bytes(&mut pool)
                .map_err(|e| AuthError::Rng(e.to_string()))?;
            for &byte in &pool {
                if filled == len {
                    break;
                }
                // 250 = 25 * 10: the largest multiple of 10 that fits a byte.
                if byte < 250 {
                    digits[filled] = b'0' + byte % 10;
                    filled += 1;
                }
            }
        }
        Self::from_digits(&digits[..len])
    }

    /// The digits, for the few places where the operator must see them or
    /// the store must persist them. Everything else should pass the
    /// `AuthString` around unopened.
    #[must_use]
    pub fn expose(&self) -> &str {
        // Only ASCII digits are ever stored, so this never fails; an empty
        // string would be returned otherwise, never a panic.
        std::str::from_utf8(&self.digits[..usize::from(self.len)]).unwrap_or_default()
    }

    /// Number of digits (4 to 10).
    #[must_use]
    #[allow(clippy::len_without_is_empty)] // never empty
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Compares, in constant time, with the PASSWORD a phone sent.
    ///
    /// `presented` is the PASSWORD element's value without its NUL
    /// terminator: the caller (who decoded the wire message) strips it. As
    /// a safety net a single trailing NUL is ignored here too. Digits never
    /// contain NUL, so this cannot make a wrong string match.
    ///
    /// The time taken depends only on whether `presented` is longer than
    /// 10 bytes (which the sender knows anyway), never on the armed digits
    /// or on how many there are.
    #[must_use]
    pub fn matches(&self, presented: &[u8]) -> bool {
        let presented = presented.strip_suffix(&[0]).unwrap_or(presented);
        if presented.len() > Self::MAX_LEN {
            return false;
        }
        let mut padded = [0u8; Self::MAX_LEN];
        padded[..presented.len()].copy_from_slice(presented);
        // presented.len() <= 10 here.
        let presented_len = u8::try_from(presented.len()).unwrap_or(u8::MAX);
        let same = padded.ct_eq(&self.digits) & presented_len.ct_eq(&self.len);
        bool::from(same)
    }
}

impl PartialEq for AuthString {
    /// Constant-time equality.
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.digits.ct_eq(&other.digits) & self.len.ct_eq(&other.len))
    }
}

impl Eq for AuthString {}

impl fmt::Debug for AuthString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthString(******)")
    }
}

impl fmt::Display for AuthString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("******")
    }
}

impl FromStr for AuthString {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_digits(s.as_bytes())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use core::convert::Infallible;
    use rand_core::TryRng;

    /// Replays fixed bytes, then counts up.
    struct Scripted(Vec<u8>, u8);

    impl TryRng for Scripted {
        type Error = Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Infallible> {
            unreachable!()
        }
        fn try_next_u64(&mut self) -> Result<u64, Infallible> {
            unreachable!()
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
            for b in dst {
                *b = if self.0.is_empty() {
                    self.1 = self.1.wrapping_add(1);
                    self.1
                } else {
                    self.0.remove(0)
                };
            }
            Ok(())
        }
    }
    impl TryCryptoRng for Scripted {}

    #[test]
    fn parses_4_to_10_digits() {
        for s in ["1234", "0000", "0123456789"] {
            assert_eq!(s.parse::<AuthString>().unwrap().expose(), s);
        }
    }

    #[test]
    fn rejects_bad_lengths_and_non_digits() {
        assert_eq!(
            "123".parse::<AuthString>(),
            Err(AuthError::AuthStringLength { len: 3 })
        );
        assert_eq!(
            "12345678901".parse::<AuthString>(),
            Err(AuthError::AuthStringLength { len: 11 })
        );
        assert_eq!(
            "12a4".parse::<AuthString>(),
            Err(AuthError::AuthStringNotDigit { position: 2 })
        );
        assert!(
            "١٢٣٤".parse::<AuthString>().is_err(),
            "non-ASCII digits are refused"
        );
        assert!(matches!(
            " 1234".parse::<AuthString>(),
            Err(AuthError::AuthStringNotDigit { position: 0 })
        ));
    }

    #[test]
    fn never_shows_the_digits() {
        let s: AuthString = "98765".parse().unwrap();
        assert_eq!(format!("{s:?}"), "AuthString(******)");
        assert_eq!(format!("{s}"), "******");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(AuthString(******))");
    }

    #[test]
    fn matches_exactly_with_optional_trailing_nul() {
        let s: AuthString = "123456".parse().unwrap();
        assert!(s.matches(b"123456"));
        assert!(s.matches(b"123456\0"));
        assert!(!s.matches(b"123456\0\0"));
        assert!(!s.matches(b"12345"));
        assert!(!s.matches(b"1234567"));
        assert!(!s.matches(b"123457"));
        assert!(!s.matches(b""));
        assert!(!s.matches(b"\0"));
        assert!(!s.matches(b"123456\0\0\0\0\0\0\0"));
        // Padding bytes are zero: a presented string with NULs must not match
        // a shorter armed string.
        let short: AuthString = "1234".parse().unwrap();
        assert!(!short.matches(b"1234\0\0"));
    }

    #[test]
    fn generation_rejects_biased_bytes() {
        // 250..=255 must be skipped; 0 -> '0', 9 -> '9', 249 -> '9', 10 -> '0'.
        let mut rng = Scripted(vec![250, 255, 0, 9, 251, 249, 10], 0);
        let s = AuthString::generate_with(&mut rng, 5).unwrap();
        assert_eq!(s.expose(), "09901");
    }

    #[test]
    fn generation_checks_length() {
        assert_eq!(
            AuthString::generate(3).err(),
            Some(AuthError::AuthStringLength { len: 3 })
        );
        assert_eq!(
            AuthString::generate(11).err(),
            Some(AuthError::AuthStringLength { len: 11 })
        );
        for len in 4..=10 {
            let s = AuthString::generate(len).unwrap();
            assert_eq!(s.len(), len);
            assert!(s.expose().bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn generated_digits_are_roughly_uniform() {
        let mut counts = [0u32; 10];
        for _ in 0..2_000 {
            for b in AuthString::generate(10).unwrap().expose().bytes() {
                counts[usize::from(b - b'0')] += 1;
            }
        }
        // 20_000 digits, 2_000 expected each; 5 sigma is about 212.
        for c in counts {
            assert!((1_750..=2_250).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn equality_is_by_value() {
        let a: AuthString = "1234".parse().unwrap();
        assert_eq!(a, "1234".parse().unwrap());
        assert_ne!(a, "12340".parse().unwrap());
        assert_ne!(a, "1235".parse().unwrap());
    }
}
