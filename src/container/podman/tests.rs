//! Unit tests of the client that need no Podman: errors and pooling.

use super::*;

#[test]
fn errors_for_a_missing_socket_are_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let p = Podman::new(&dir.path().join("none.sock"));
    match p.ping() {
        Err(ContainerError::Unreachable { socket, reason }) => {
            assert!(socket.ends_with("none.sock"));
            assert!(reason.contains("No such file"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // Reported as retryable.
    assert!(p.ping().unwrap_err().is_retryable());
}

/// A pooled connection outlives the socket file (removed, or the
/// service replaced): the health check must not reuse one.
#[test]
fn every_ping_opens_a_new_connection() {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let server = std::thread::spawn(move || {
        let mut connections = 0;
        let mut kept = Vec::new();
        for _ in 0..2 {
            let (stream, _) = listener.accept().unwrap();
            connections += 1;
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                line.clear();
            }
            let mut w = stream;
            w.write_all(
                b"HTTP/1.1 200 OK\r\nLibpod-Api-Version: 4.3.1\r\nContent-Length: 2\r\n\r\nOK",
            )
            .unwrap();
            // Kept open: a pooling client could send its next request here.
            kept.push(w);
        }
        connections
    });
    let p = Podman::new(&sock);
    assert_eq!(p.ping().unwrap(), "4.3.1");
    assert_eq!(p.ping().unwrap(), "4.3.1");
    assert_eq!(server.join().unwrap(), 2);
}
