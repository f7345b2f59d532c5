//! A stream that first gives back bytes already read from it: the ClientHello the accept loop
//! read to fingerprint it, handed on to the TLS library as if unread.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pin_project_lite::pin_project! {
    /// `inner`, with `read` in front of what it reads.
    pub(crate) struct Rewind<S> {
        read: Vec<u8>,
        position: usize,
        #[pin]
        inner: S,
    }
}

impl<S> Rewind<S> {
    /// `inner`, whose reads start with `read`.
    pub(crate) fn new(read: Vec<u8>, inner: S) -> Self {
        Rewind {
            read,
            position: 0,
            inner,
        }
    }
}

impl<S: AsyncRead> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if *this.position < this.read.len() {
            let rest = &this.read[*this.position..];
            let count = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..count]);
            *this.position += count;
            if *this.position == this.read.len() {
                // What was read is given back: its memory is not kept for the connection's life.
                *this.read = Vec::new();
                *this.position = 0;
            }
            return Poll::Ready(Ok(()));
        }
        this.inner.poll_read(cx, buf)
    }
}

impl<S: AsyncWrite> AsyncWrite for Rewind<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    #[tokio::test]
    async fn what_was_read_comes_first_then_the_stream() {
        let mut stream = Rewind::new(b"hello ".to_vec(), &b"world"[..]);
        let mut all = String::new();
        stream.read_to_string(&mut all).await.expect("read");
        assert_eq!(all, "hello world");
    }
}
