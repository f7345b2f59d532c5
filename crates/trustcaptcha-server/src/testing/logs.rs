//! A capture of what the server logs, for tests that check the log.

use std::sync::Arc;

/// Captures everything `tracing` logs on the current thread (at every level, without colour)
/// while the guard from [`LogCapture::start`] lives. Use it in a current-thread test runtime,
/// so that the server, the client and the test share the thread.
#[derive(Debug, Clone, Default)]
pub struct LogCapture(Arc<parking_lot::Mutex<Vec<u8>>>);

impl LogCapture {
    /// Starts capturing; capturing stops when the returned guard is dropped.
    pub fn start() -> (LogCapture, tracing::subscriber::DefaultGuard) {
        let capture = LogCapture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (capture, tracing::subscriber::set_default(subscriber))
    }

    /// What was logged so far.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
