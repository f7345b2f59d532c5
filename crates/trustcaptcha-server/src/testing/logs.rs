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

/// Installs the log as `log_output::install` does, except that access lines go through
/// `tracing_subscriber`'s general formatter: the baseline of the access line's benchmark.
///
/// # Errors
///
/// As `log_output::install`.
#[cfg(feature = "cli")]
pub fn install_general_log(
    format: crate::log_output::LogFormat,
) -> std::io::Result<crate::log_output::FlushOnDrop<std::io::Stderr>> {
    crate::log_output::install_with(format, false)
}

/// Logs `count` access lines, each as the edge logs a finished verification's submission
/// (a network, a site, a detection signal), with latencies that vary as real ones do.
pub fn log_access_lines(count: u64) {
    let network = crate::networks::network(std::net::IpAddr::from([192, 0, 2, 7]));
    for index in 0..count {
        crate::access_line::AccessLine {
            method: "POST",
            route: "/v2/verifications/{id}/challenges",
            status: 201,
            network: Some(network),
            latency: std::time::Duration::from_micros(40 + index % 1000),
            site: Some("shop"),
            reason: None,
            signals: Some("no_events"),
            tls: None,
        }
        .log();
    }
}
