//! The operating system's random source in the shape `ed25519-zebra` asks for.
//!
//! `ed25519-zebra` 5 is written against `rand_core` 0.10, the rest of the workspace (key
//! generation, tests with seeded generators) against 0.6. Batch verification needs fresh,
//! unpredictable 128-bit coefficients for every batch, so this adapter hands it the same
//! source as `rand_core::OsRng` (getrandom).

use std::convert::Infallible;

use rand_core::RngCore as _;

/// `rand_core::OsRng` (0.6) as a `rand_core` 0.10 cryptographic generator. Like `OsRng`, it
/// panics if the operating system cannot supply randomness.
pub(crate) struct OsRng010;

impl rand_core_010::TryRng for OsRng010 {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(rand_core::OsRng.next_u32())
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(rand_core::OsRng.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        rand_core::OsRng.fill_bytes(dst);
        Ok(())
    }
}

impl rand_core_010::TryCryptoRng for OsRng010 {}

#[cfg(test)]
mod tests {
    use rand_core_010::Rng as _;

    use super::OsRng010;

    #[test]
    fn draws_differ() {
        let mut rng = OsRng010;
        let a: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        let b: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        assert_ne!(a, b, "two draws of 256 random bits were equal");
    }
}
