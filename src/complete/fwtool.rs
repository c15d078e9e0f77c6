//! The signature chunk `fwtool -S` appends to an OpenWrt image, so that an
//! image signed after the ImageBuilder wrote its checksums can still be
//! matched to them.
//!
//! The reference server (and asu-builder, with a build key) signs the
//! installable images after the ImageBuilder: `fwtool -t -s /dev/null`
//! drops the ImageBuilder's own signature chunk, if any, then `fwtool -S`
//! appends a new one. `profiles.json` keeps the ImageBuilder's `sha256`
//! (of the image with its own signature) and `sha256_unsigned` (of the
//! image before any signature). So a re-signed image is the listed one
//! when, without its last chunk, it hashes to `sha256_unsigned` (or, for
//! images the ImageBuilder did not sign, to `sha256`).
//!
//! A chunk is `[data][trailer]`; the 16-byte trailer is big-endian
//! `{magic "FWx0", crc32, type, pad[3], size}` with `size` counting data
//! and trailer. Signatures are type 0 and at most 1 KiB of data.

/// Length of the trailer at the very end of a chunk.
pub const TRAILER_LEN: u64 = 16;
const MAGIC: u32 = 0x4657_7830;
const TYPE_SIGNATURE: u8 = 0;
/// fwtool refuses signatures longer than this.
const MAX_SIGNATURE_DATA: u64 = 1024;

/// When `trailer` (an image's last 16 bytes) ends a signature chunk, the
/// chunk's length (data and trailer); the image without it is the image
/// as it was before it was signed.
pub fn signature_chunk_len(trailer: &[u8; 16], file_len: u64) -> Option<u64> {
    let be32 = |at: usize| {
        u32::from_be_bytes([
            trailer[at],
            trailer[at + 1],
            trailer[at + 2],
            trailer[at + 3],
        ])
    };
    let size = u64::from(be32(12));
    (be32(0) == MAGIC
        && trailer[8] == TYPE_SIGNATURE
        && (TRAILER_LEN..=TRAILER_LEN + MAX_SIGNATURE_DATA).contains(&size)
        && size <= file_len)
        .then_some(size)
}

/// A signature chunk with `data` as fwtool writes it (for tests; the CRC
/// is not checked when reading).
pub fn signature_chunk(data: &[u8]) -> Vec<u8> {
    let mut chunk = data.to_vec();
    chunk.extend_from_slice(&MAGIC.to_be_bytes());
    chunk.extend_from_slice(&[0; 4]);
    chunk.extend_from_slice(&[TYPE_SIGNATURE, 0, 0, 0]);
    chunk.extend_from_slice(&((data.len() as u64 + TRAILER_LEN) as u32).to_be_bytes());
    chunk
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(bytes: &[u8]) -> [u8; 16] {
        bytes[bytes.len() - 16..].try_into().unwrap()
    }

    #[test]
    fn a_signature_chunk_is_recognised_by_magic_type_and_size() {
        let chunk = signature_chunk(b"untrusted comment: signed\nRWSig\n");
        assert_eq!(
            signature_chunk_len(&tail(&chunk), 1000),
            Some(chunk.len() as u64)
        );
        // Longer than the file, or than fwtool allows: not a chunk.
        assert_eq!(signature_chunk_len(&tail(&chunk), 10), None);
        assert_eq!(
            signature_chunk_len(&tail(&signature_chunk(&[7; 1025])), 1 << 20),
            None
        );
        // A metadata chunk (type 1) is part of the unsigned image.
        let mut info = chunk.clone();
        let at = info.len() - 8;
        info[at] = 1;
        assert_eq!(signature_chunk_len(&tail(&info), 1000), None);
        // Anything else.
        assert_eq!(signature_chunk_len(&[0; 16], 1000), None);
        let mut bad_magic = chunk;
        let at = bad_magic.len() - 16;
        bad_magic[at] = b'X';
        assert_eq!(signature_chunk_len(&tail(&bad_magic), 1000), None);
    }
}
