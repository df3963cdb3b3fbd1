//! Service parameters that shape the policy.

use std::num::NonZeroU32;

use crate::AuthError;

/// Service parameters the decision depends on.
///
/// Like every CAPF service parameter, they are read at service start
/// and passed to each decision. The lockout flag is stored in the device's
/// state, so lowering or raising the limit never unlocks a locked device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Parameters {
    /// Consecutive wrong authentication strings after which the device is
    /// locked: the `failure_limit`-th wrong string locks it. Default 5.
    pub failure_limit: NonZeroU32,
}

impl Parameters {
    /// The default wrong-string limit.
    pub const DEFAULT_FAILURE_LIMIT: NonZeroU32 = match NonZeroU32::new(5) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    };

    /// Default parameters with another wrong-string limit.
    ///
    /// # Errors
    /// [`AuthError::ZeroFailureLimit`] for 0.
    pub fn with_failure_limit(limit: u32) -> Result<Self, AuthError> {
        let failure_limit = NonZeroU32::new(limit).ok_or(AuthError::ZeroFailureLimit)?;
        Ok(Parameters { failure_limit })
    }
}

impl Default for Parameters {
    fn default() -> Self {
        Parameters {
            failure_limit: Parameters::DEFAULT_FAILURE_LIMIT,
        }
    }
}
