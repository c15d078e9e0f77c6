//! Exec output: the multiplexed stream podman sends for `Tty:false` exec
//! sessions, and a buffer that keeps only the end of a long output.
//!
//! Frame format: 8-byte header `[stream, 0, 0, 0, len (u32 big endian)]`
//! followed by `len` bytes; stream 1 is stdout, 2 is stderr.

use std::io::{self, Read};

/// Keeps the last `cap` bytes pushed into it. The end of a build log is
/// where the error is, so the beginning is what gets dropped.
#[derive(Debug)]
pub struct TailBuffer {
    cap: usize,
    buf: Vec<u8>,
    dropped: u64,
}

impl TailBuffer {
    pub fn new(cap: usize) -> TailBuffer {
        TailBuffer {
            cap,
            buf: Vec::new(),
            dropped: 0,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        if data.len() >= self.cap {
            self.dropped += (self.buf.len() + data.len() - self.cap) as u64;
            self.buf.clear();
            self.buf.extend_from_slice(&data[data.len() - self.cap..]);
            return;
        }
        self.buf.extend_from_slice(data);
        // Trim in batches (at 2×cap) so pushing many small frames stays
        // linear instead of shifting the buffer on every push.
        if self.buf.len() > 2 * self.cap {
            self.trim();
        }
    }

    fn trim(&mut self) {
        if self.buf.len() > self.cap {
            let excess = self.buf.len() - self.cap;
            self.buf.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    /// Bytes dropped from the front so far (after the final trim).
    pub fn dropped(&mut self) -> u64 {
        self.trim();
        self.dropped
    }

    /// The kept text, lossily decoded, led by a note when the front was cut.
    pub fn into_string(mut self) -> String {
        self.trim();
        if self.dropped == 0 {
            return String::from_utf8_lossy(&self.buf).into_owned();
        }
        // Do not start in the middle of a multi-byte character.
        let skip = self
            .buf
            .iter()
            .take(3)
            .take_while(|b| (**b & 0xC0) == 0x80)
            .count();
        let dropped = self.dropped + skip as u64;
        format!(
            "[... {dropped} bytes of earlier output truncated ...]\n{}",
            String::from_utf8_lossy(&self.buf[skip..])
        )
    }
}

/// Fills `buf` completely; `Ok(false)` when the stream ended before (a
/// clean end at a frame boundary, or a truncated header we cannot use).
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads frames until EOF, routing payloads to `stdout`/`stderr`. Frame
/// lengths come from the peer, so payloads are copied in fixed-size chunks
/// and never allocated by their announced size. A stream cut inside a
/// frame (container killed) keeps whatever arrived.
pub fn demux<R: Read>(
    mut r: R,
    stdout: &mut TailBuffer,
    stderr: &mut TailBuffer,
) -> io::Result<()> {
    let mut header = [0u8; 8];
    let mut chunk = vec![0u8; 64 * 1024];
    while read_full(&mut r, &mut header)? {
        let mut left = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        // 0 would be stdin (never attached); anything unknown is not output
        // we want to lose, so it joins stderr.
        let sink = if header[0] == 1 {
            &mut *stdout
        } else {
            &mut *stderr
        };
        while left > 0 {
            let want = left.min(chunk.len());
            let n = match r.read(&mut chunk[..want]) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            sink.push(&chunk[..n]);
            left -= n;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![stream, 0, 0, 0];
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    /// A reader that hands out at most `n` bytes per read, like a socket.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(self.1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn splits_stdout_and_stderr_across_short_reads() {
        let mut wire = frame(1, b"out1\n");
        wire.extend(frame(2, b"err1\n"));
        wire.extend(frame(1, b"out2\n"));
        let (mut out, mut err) = (TailBuffer::new(1024), TailBuffer::new(1024));
        demux(Trickle(&wire, 3), &mut out, &mut err).unwrap();
        assert_eq!(out.into_string(), "out1\nout2\n");
        assert_eq!(err.into_string(), "err1\n");
    }

    #[test]
    fn truncated_stream_keeps_what_arrived() {
        let mut wire = frame(1, b"complete\n");
        wire.extend(frame(2, b"cut here"));
        wire.truncate(wire.len() - 4); // payload cut short
        let (mut out, mut err) = (TailBuffer::new(1024), TailBuffer::new(1024));
        demux(&wire[..], &mut out, &mut err).unwrap();
        assert_eq!(out.into_string(), "complete\n");
        assert_eq!(err.into_string(), "cut ");

        let mut wire = frame(1, b"x");
        wire.extend([1, 0, 0]); // half a header
        let (mut out, mut err) = (TailBuffer::new(1024), TailBuffer::new(1024));
        demux(&wire[..], &mut out, &mut err).unwrap();
        assert_eq!(out.into_string(), "x");
    }

    #[test]
    fn huge_announced_length_does_not_allocate_it() {
        let mut wire = vec![1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        wire.extend_from_slice(b"tiny");
        let (mut out, mut err) = (TailBuffer::new(16), TailBuffer::new(16));
        demux(&wire[..], &mut out, &mut err).unwrap();
        assert_eq!(out.into_string(), "tiny");
    }

    #[test]
    fn tail_buffer_keeps_the_end_and_says_so() {
        let mut t = TailBuffer::new(10);
        for i in 0..100 {
            t.push(format!("{i:03}\n").as_bytes());
        }
        assert_eq!(t.dropped(), 390);
        let s = t.into_string();
        assert!(
            s.starts_with("[... 390 bytes of earlier output truncated ...]\n"),
            "{s}"
        );
        assert!(s.ends_with("8\n099\n"), "{s}");
    }

    #[test]
    fn tail_buffer_single_push_larger_than_cap() {
        let mut t = TailBuffer::new(4);
        t.push(b"ab");
        t.push(b"0123456789");
        assert_eq!(t.dropped(), 8);
        assert!(t.into_string().ends_with("\n6789"));
    }

    #[test]
    fn tail_buffer_does_not_split_a_character() {
        let mut t = TailBuffer::new(5);
        t.push("xxé1234".as_bytes()); // é is 2 bytes; the cut lands inside it
        let s = t.into_string();
        assert!(s.ends_with("\n1234"), "{s:?}");
        assert!(!s.contains('\u{FFFD}'));
    }

    #[test]
    fn untruncated_output_is_verbatim() {
        let mut t = TailBuffer::new(100);
        t.push(b"hello ");
        t.push(b"world");
        assert_eq!(t.into_string(), "hello world");
    }
}
