//! The access log's queue: lines appended by request threads, drained in batches by one writer
//! thread (see the parent module).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Bytes of lines queued for the writer thread before new lines are dropped.
pub(crate) const QUEUED_BYTES: usize = 4 << 20;
/// How long the writer lets lines gather after each write.
pub(crate) const BATCH: Duration = Duration::from_millis(5);

/// Lines waiting for the writer thread.
struct Queue {
    lines: Vec<u8>,
    /// The writer is parked on [`Sink::ready`] (so the next line must wake it).
    writer_waiting: bool,
    /// [`Sink::close`] ran: the writer writes what is queued and stops; new lines are discarded.
    closed: bool,
}

/// A bounded byte queue drained by one writer thread.
pub(crate) struct Sink {
    queue: Mutex<Queue>,
    ready: Condvar,
    dropped: AtomicU64,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Sink {
    /// A sink whose writer thread writes to `out` (flushing after every batch).
    pub(crate) fn start(out: Box<dyn Write + Send>) -> &'static Sink {
        let sink: &'static Sink = Box::leak(Box::new(Sink::new()));
        sink.spawn(out);
        sink
    }

    fn new() -> Sink {
        Sink {
            queue: Mutex::new(Queue {
                lines: Vec::with_capacity(64 * 1024),
                writer_waiting: false,
                closed: false,
            }),
            ready: Condvar::new(),
            dropped: AtomicU64::new(0),
            writer: Mutex::new(None),
        }
    }

    fn spawn(&'static self, out: Box<dyn Write + Send>) {
        let thread = std::thread::Builder::new()
            .name("keygate-access-log".into())
            .spawn(move || self.run(out))
            .expect("spawn the access-log writer");
        *lock(&self.writer) = Some(thread);
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        lock(&self.queue)
    }

    /// Queues `line` (whole lines only), or drops and counts it when the queue is full.
    pub(crate) fn push(&self, line: &[u8]) {
        let mut q = self.lock();
        if q.closed {
            return;
        }
        if q.lines.len() + line.len() > QUEUED_BYTES {
            drop(q);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        q.lines.extend_from_slice(line);
        if std::mem::take(&mut q.writer_waiting) {
            drop(q);
            self.ready.notify_one();
        }
    }

    /// Lines dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn run(&self, mut out: Box<dyn Write + Send>) {
        let mut batch = Vec::with_capacity(64 * 1024);
        loop {
            let mut q = self.lock();
            while q.lines.is_empty() && !q.closed {
                q.writer_waiting = true;
                q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            q.writer_waiting = false;
            let closed = q.closed;
            std::mem::swap(&mut q.lines, &mut batch);
            drop(q);
            // Nowhere to report a failed write to: the access log is the report.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
            if closed {
                return;
            }
            std::thread::sleep(BATCH);
        }
    }

    /// Writes what is queued and stops the writer thread (later lines are discarded).
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
        if let Some(writer) = lock(&self.writer).take() {
            let _ = writer.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that records each `write` call and blocks while `gate` is closed.
    #[derive(Clone, Default)]
    struct Recorder {
        writes: std::sync::Arc<Mutex<Vec<Vec<u8>>>>,
        gate: std::sync::Arc<(Mutex<bool>, Condvar)>,
    }

    impl Write for Recorder {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let (held, cv) = &*self.gate;
            let mut held = lock(held);
            while *held {
                held = cv.wait(held).unwrap();
            }
            lock(&self.writes).push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Recorder {
        fn hold(&self, held: bool) {
            *lock(&self.gate.0) = held;
            self.gate.1.notify_all();
        }
        fn text(&self) -> String {
            String::from_utf8(lock(&self.writes).concat()).unwrap()
        }
    }

    #[test]
    fn lines_written_together_leave_in_one_write_and_close_flushes_the_rest() {
        let out = Recorder::default();
        out.hold(true);
        let sink = Sink::start(Box::new(out.clone()));
        sink.push(b"first\n");
        std::thread::sleep(Duration::from_millis(50)); // the writer takes "first" and blocks
        for i in 0..100 {
            sink.push(format!("line {i}\n").as_bytes());
        }
        out.hold(false);
        sink.close();
        sink.push(b"after close\n");
        let writes = lock(&out.writes).clone();
        assert_eq!(
            writes.len(),
            2,
            "one write for `first`, one for the 100 queued behind it"
        );
        let text = out.text();
        assert!(
            text.starts_with("first\nline 0\n") && text.ends_with("line 99\n"),
            "{text}"
        );
        assert_eq!(sink.dropped(), 0);
    }

    #[test]
    fn a_stalled_output_drops_whole_lines_beyond_the_bound_and_counts_them() {
        let out = Recorder::default();
        out.hold(true);
        let sink = Sink::start(Box::new(out.clone()));
        sink.push(b"x\n");
        std::thread::sleep(Duration::from_millis(50));
        let line = [b'a'; 1023]
            .iter()
            .copied()
            .chain([b'\n'])
            .collect::<Vec<u8>>();
        let fits = QUEUED_BYTES / line.len();
        for _ in 0..fits + 10 {
            sink.push(&line);
        }
        assert_eq!(sink.dropped(), 10);
        out.hold(false);
        sink.close();
        let text = out.text();
        assert_eq!(text.len(), 2 + fits * line.len());
        assert!(text.lines().skip(1).all(|l| l.len() == 1023));
    }
}
