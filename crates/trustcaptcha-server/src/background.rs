//! A thread of its own for work that runs beside the requests (the memory store's sweeper, the
//! log's flusher), owned by what it serves: dropping the [`BackgroundThread`] tells the thread to
//! stop and waits until it has.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

/// A named thread that runs until this handle is dropped.
#[derive(Debug)]
pub(crate) struct BackgroundThread {
    /// Dropped first: ends the thread's wait.
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the thread waits on between its pieces of work.
#[derive(Debug)]
pub(crate) struct Running(Receiver<()>);

impl Running {
    /// Waits for `duration`; false, at once, when the thread's handle was dropped.
    pub(crate) fn wait(&self, duration: Duration) -> bool {
        matches!(
            self.0.recv_timeout(duration),
            Err(RecvTimeoutError::Timeout)
        )
    }
}

impl BackgroundThread {
    /// Runs `work` on a new thread called `name`; `work` should return once
    /// [`Running::wait`] answers false.
    ///
    /// # Errors
    ///
    /// When the thread cannot be started.
    pub(crate) fn spawn(
        name: &str,
        work: impl FnOnce(Running) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || work(Running(stopped)))?;
        Ok(BackgroundThread {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for BackgroundThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A thread that panicked has nothing left to stop.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn dropping_the_handle_ends_a_long_wait_and_waits_for_the_thread() {
        let (stopping, heard) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let thread = BackgroundThread::spawn("test-background", move |running| {
            while running.wait(Duration::from_secs(3600)) {}
            let _ = stopping.send(());
            // Still busy after the stop: the drop must wait for this.
            let _ = released.recv();
        })
        .expect("started");
        let (dropped, done) = mpsc::channel();
        std::thread::spawn(move || {
            drop(thread);
            let _ = dropped.send(());
        });
        heard
            .recv_timeout(Duration::from_secs(60))
            .expect("the drop ended the hour-long wait");
        assert!(
            done.recv_timeout(Duration::from_millis(100)).is_err(),
            "the drop returned while the thread was still running"
        );
        release.send(()).expect("the thread is waiting");
        done.recv_timeout(Duration::from_secs(60))
            .expect("the drop returned once the thread ended");
    }
}
