//! Where the command line's log lines go: one buffer in front of a writer (standard error),
//! so that an access log line costs a copy into memory instead of a `write(2)` of its own.
//! [`install`] sets the log up as the binary ships it; the benchmarks' server processes call it
//! too, so that they measure the log's cost with the rest.
//!
//! Written one by one, the access log's lines took a fifth of the server's CPU per request
//! at 60 000 requests per second (`scripts/bench-results.sh`, the server as shipped beside the
//! same server with the access log off). Lines at info level and below now wait in a 64-KiB
//! buffer, written when it is full, by a flusher thread at most 100 ms later, and when the
//! [`FlushOnDrop`] guard goes; a warning or an error is written at once, with every line
//! before it, so what an operator must see is never held back.
//!
//! The access lines themselves are written by `access_line`, straight into the same buffer
//! ([`install`] registers it), not through the general formatter: 0.4 µs per line instead of
//! about 2.
//!
//! `tracing-appender`'s non-blocking writer was measured first: a channel send, an allocation
//! and a thread wake-up per line cost more than the `write(2)` it saves (a median of 20.2 µs
//! per request against 19.1 µs writing directly).

use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

use crate::background::BackgroundThread;

/// How log lines are written: text for people, JSON for log collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event; colours only on a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the command line's log as the process's global subscriber: `RUST_LOG` (default
/// `info`, which includes one access line per request) chooses what is written, in `format`,
/// to a buffered standard error. Keep the returned guard until the process ends: dropping it
/// writes what waits in the buffer.
///
/// # Errors
///
/// When the flusher thread cannot be started, or the process already has a global subscriber.
pub fn install(format: LogFormat) -> std::io::Result<FlushOnDrop<std::io::Stderr>> {
    install_with(format, true)
}

/// [`install`], with the access lines written by `access_line` itself (`fast`) or, for
/// comparison, by `tracing_subscriber`'s general formatter.
pub(crate) fn install_with(
    format: LogFormat,
    fast: bool,
) -> std::io::Result<FlushOnDrop<std::io::Stderr>> {
    let (output, guard) = LogOutput::start(std::io::stderr(), FLUSH_EVERY)?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(output.clone())
        .with_ansi(ansi);
    match format {
        LogFormat::Text => logs.try_init(),
        LogFormat::Json => logs.json().try_init(),
    }
    .map_err(std::io::Error::other)?;
    // Colours are the general formatter's: on a terminal, access lines stay its events.
    if fast && !ansi {
        // As a `Line` below warning level writes: into the buffer, not at once.
        let line = move |bytes: &[u8]| {
            // Nowhere to report a failure to write the log; the next write tries again.
            let _ = output.buffer.lock().write_all(bytes);
        };
        crate::access_line::write_to(format == LogFormat::Json, Box::new(line));
    }
    Ok(guard)
}

/// The longest a line at info level or below waits in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// What the buffer holds before it is written.
const CAPACITY: usize = 64 * 1024;

/// A `MakeWriter` for `tracing_subscriber::fmt` that buffers lines below warning level; cheap
/// to clone, every clone writes into the same buffer.
pub(crate) struct LogOutput<W: Write> {
    buffer: Arc<Mutex<BufWriter<W>>>,
}

impl<W: Write> Clone for LogOutput<W> {
    fn clone(&self) -> Self {
        LogOutput {
            buffer: Arc::clone(&self.buffer),
        }
    }
}

impl<W: Write> std::fmt::Debug for LogOutput<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogOutput").finish_non_exhaustive()
    }
}

impl<W: Write + Send + 'static> LogOutput<W> {
    /// An output into `writer`, and the guard that flushes it: every `interval` from a thread
    /// of its own, and when the guard is dropped (keep it until the process ends).
    ///
    /// # Errors
    ///
    /// When the flusher thread cannot be started.
    fn start(writer: W, interval: Duration) -> std::io::Result<(Self, FlushOnDrop<W>)> {
        let output = LogOutput {
            buffer: Arc::new(Mutex::new(BufWriter::with_capacity(CAPACITY, writer))),
        };
        let flushed = output.clone();
        let flusher = BackgroundThread::spawn("trustcaptcha-log", move |running| {
            while running.wait(interval) {
                flushed.flush();
            }
        })?;
        let guard = FlushOnDrop {
            output: output.clone(),
            _flusher: flusher,
        };
        Ok((output, guard))
    }
}

impl<W: Write> LogOutput<W> {
    fn flush(&self) {
        // Nowhere to report a failure to write the log; the next write tries again.
        let _ = self.buffer.lock().flush();
    }
}

/// Writes what is left in the buffer, and stops the flusher thread.
pub struct FlushOnDrop<W: Write + Send + 'static> {
    output: LogOutput<W>,
    /// Stopped after the last flush, with the guard's fields.
    _flusher: BackgroundThread,
}

impl<W: Write + Send + 'static> std::fmt::Debug for FlushOnDrop<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushOnDrop").finish_non_exhaustive()
    }
}

impl<W: Write + Send + 'static> Drop for FlushOnDrop<W> {
    fn drop(&mut self) {
        self.output.flush();
    }
}

/// One line's writer: copies into the buffer, and writes the buffer out when dropped if the
/// line is a warning or an error.
#[derive(Debug)]
pub(crate) struct Line<'a, W: Write> {
    output: &'a LogOutput<W>,
    urgent: bool,
}

impl<W: Write> Write for Line<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.output.buffer.lock().write(bytes)
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.output.buffer.lock().write_all(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.output.buffer.lock().flush()
    }
}

impl<W: Write> Drop for Line<'_, W> {
    fn drop(&mut self) {
        if self.urgent {
            self.output.flush();
        }
    }
}

impl<'a, W: Write + 'a> MakeWriter<'a> for LogOutput<W> {
    type Writer = Line<'a, W>;

    fn make_writer(&'a self) -> Line<'a, W> {
        // Without a line's level, nothing waits.
        Line {
            output: self,
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a, W> {
        Line {
            output: self,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

// The tests write into `testing::LogCapture`, a writer they can read.
#[cfg(all(test, feature = "test-support"))]
mod tests {
    use std::time::Instant;

    use tracing_subscriber::fmt::MakeWriter as _;

    use super::*;
    use crate::testing::LogCapture;

    /// An output into a [`LogCapture`], flushed every `interval` (an hour: never during a
    /// test).
    fn started(interval: Duration) -> (LogCapture, LogOutput<LogCapture>, FlushOnDrop<LogCapture>) {
        let written = LogCapture::default();
        let (output, guard) = LogOutput::start(written.clone(), interval).expect("started");
        (written, output, guard)
    }

    /// Logs `message` at `level` through `output`, as `tracing_subscriber::fmt` does.
    fn log(output: &LogOutput<LogCapture>, level: tracing::Level, message: &str) {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(output.clone())
            .with_max_level(Level::TRACE)
            .without_time()
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || match level {
            Level::ERROR => tracing::error!("{message}"),
            Level::WARN => tracing::warn!("{message}"),
            Level::INFO => tracing::info!("{message}"),
            Level::DEBUG => tracing::debug!("{message}"),
            Level::TRACE => tracing::trace!("{message}"),
        });
    }

    #[test]
    fn info_lines_wait_and_a_warning_writes_them_first_then_itself() {
        let (written, output, _guard) = started(Duration::from_secs(3600));
        log(&output, Level::INFO, "first access line");
        log(&output, Level::DEBUG, "second line");
        assert_eq!(written.text(), "", "lines below warning level wait");
        log(&output, Level::WARN, "the store failed");
        let text = written.text();
        let first = text.find("first access line").expect("the first line");
        let second = text.find("second line").expect("the second line");
        let warning = text.find("the store failed").expect("the warning");
        assert!(first < second && second < warning, "{text}");
        log(&output, Level::INFO, "after the warning");
        log(&output, Level::ERROR, "an error");
        assert!(written.text().ends_with("an error\n"), "{}", written.text());
    }

    #[test]
    fn dropping_the_guard_writes_what_waits() {
        let (written, output, guard) = started(Duration::from_secs(3600));
        log(&output, Level::INFO, "the last line before exit");
        assert_eq!(written.text(), "");
        drop(guard);
        assert!(written.text().contains("the last line before exit"));
    }

    #[test]
    fn the_flusher_writes_waiting_lines_without_another_line() {
        let (written, output, _guard) = started(Duration::from_millis(10));
        log(&output, Level::INFO, "a quiet server's only line");
        // Polled, not slept on: the flusher's own interval is the only wait.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !written.text().contains("a quiet server's only line") {
            assert!(
                Instant::now() < deadline,
                "the flusher never wrote the line"
            );
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_full_buffer_is_written_without_waiting() {
        let (written, output, _guard) = started(Duration::from_secs(3600));
        let line = "x".repeat(1000);
        for _ in 0..(CAPACITY / 1000 + 2) {
            log(&output, Level::INFO, &line);
        }
        assert!(
            written.text().len() >= CAPACITY / 2,
            "a full buffer is written"
        );
    }

    #[test]
    fn a_writer_for_no_particular_line_writes_at_once() {
        let (written, output, _guard) = started(Duration::from_secs(3600));
        output
            .make_writer()
            .write_all(b"no level\n")
            .expect("written");
        assert_eq!(written.text(), "no level\n");
    }
}
