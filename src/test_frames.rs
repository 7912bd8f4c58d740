//! Test bytes shared by the unit tests: a body as the server receives it.

use bytes::Bytes;

/// `n` deterministic buffers of 64 KiB, and all their bytes in one piece.
pub(crate) fn frames(n: usize) -> (Vec<u8>, Vec<Bytes>) {
    let data: Vec<u8> = (0..n * 65_536).map(|i| (i * 31 % 251) as u8).collect();
    let buffers = data.chunks(65_536).map(Bytes::copy_from_slice).collect();
    (data, buffers)
}
