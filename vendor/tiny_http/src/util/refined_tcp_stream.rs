use std::io::Result as IoResult;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::connection::Connection;

/// One half of a client connection: the reading half shuts down the read
/// side when dropped, the writing half the write side.
///
/// (asu-builder patch: the SSL variant is gone; both halves share one socket
/// instead of a `dup()`ed descriptor each, which halves the descriptors per
/// connection and removes the panic when `dup()` hit EMFILE; the socket
/// timeouts can be set through either half.)
pub struct RefinedTcpStream {
    stream: Arc<Connection>,
    close_read: bool,
    close_write: bool,
}

impl RefinedTcpStream {
    /// Splits a connection into its (read, write) halves.
    pub(crate) fn new(stream: Connection) -> (RefinedTcpStream, RefinedTcpStream) {
        let stream = Arc::new(stream);
        let read = stream.clone();

        let read = RefinedTcpStream {
            stream: read,
            close_read: true,
            close_write: false,
        };

        let write = RefinedTcpStream {
            stream,
            close_read: false,
            close_write: true,
        };

        (read, write)
    }

    pub(crate) fn peer_addr(&self) -> IoResult<Option<SocketAddr>> {
        self.stream.peer_addr()
    }

    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> IoResult<()> {
        self.stream.set_read_timeout(timeout)
    }

    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> IoResult<()> {
        self.stream.set_write_timeout(timeout)
    }
}

impl Drop for RefinedTcpStream {
    fn drop(&mut self) {
        if self.close_read {
            self.stream.shutdown(Shutdown::Read).ok();
        }

        if self.close_write {
            self.stream.shutdown(Shutdown::Write).ok();
        }
    }
}

impl Read for RefinedTcpStream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        (&*self.stream).read(buf)
    }
}

impl Write for RefinedTcpStream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        (&*self.stream).write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        (&*self.stream).flush()
    }
}
