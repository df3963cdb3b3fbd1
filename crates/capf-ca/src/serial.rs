//! Random certificate serial numbers (RFC 5280 4.1.2.2, CA/B forum 64-bit rule).

use rand_core::TryCryptoRng;

use crate::error::{CaError, Result};

/// 16 random bytes with the top bit cleared (positive) and the next bit set
/// (so the DER INTEGER is always exactly 16 octets): 126 random bits.
pub(crate) fn random_serial<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<[u8; 16]>
where
    R::Error: std::fmt::Display,
{
    let mut serial = [0u8; 16];
    rng.try_fill_bytes(&mut serial)
        .map_err(|e| CaError::Rng(e.to_string()))?;
    serial[0] = (serial[0] & 0x7f) | 0x40;
    Ok(serial)
}
