//! Every log line a test's code writes, captured at TRACE, so a test can
//! prove that a planted secret value never reaches the logs.
//!
//! Design note: the subscriber is the thread's default (not global), so
//! tests running in parallel on other threads do not write into each
//! other's buffers; `#[tokio::test(flavor = "current_thread")]` keeps the
//! code under test on that thread.

use std::sync::{Arc, Mutex};

/// The captured bytes; clones share one buffer.
#[derive(Clone, Default)]
pub struct Buf(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    /// Everything captured so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

/// Captures TRACE logs of the current thread until the guard drops.
pub fn capture() -> (Buf, tracing::subscriber::DefaultGuard) {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    (buf, tracing::subscriber::set_default(subscriber))
}
