//! Finding the end of a request head in the bytes as they arrive, for the head limits
//! (`limits.max_request_header_bytes`, `limits.request_header_timeout_seconds`).
//!
//! A head ends at the first empty line: two line feeds with nothing but carriage returns between
//! them (`\r\n\r\n`, or the bare `\n\n` that RFC 9112 §2.2 lets a recipient accept). Empty lines
//! before the request line are skipped (RFC 9112 §2.2). The scan looks at line feeds only
//! (`memchr`), so its cost grows with the number of lines, not of bytes: a 1 KB bearer token is
//! one line.

/// What [`HeadScan::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scanned {
    /// The head goes on past these bytes.
    More,
    /// The head ended in these bytes; what follows it is body or the next request.
    End,
    /// The head is longer than the limit.
    TooLarge,
}

/// The state of one head's scan across reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct HeadScan {
    /// Bytes of this head seen so far, leading empty lines included.
    bytes: usize,
    /// A byte other than CR or LF has come (the request line began).
    pub(crate) started: bool,
    /// Line feeds since the last byte other than CR or LF (2: the head ended).
    ends: u8,
}

impl HeadScan {
    /// Scans the next bytes read. A head of more than `max` bytes, counting the empty lines
    /// before its request line but not its final line feed, is [`Scanned::TooLarge`]; a run of
    /// empty lines alone is bounded by the head timeout, not by `max`.
    pub(crate) fn feed(&mut self, new: &[u8], max: usize) -> Scanned {
        let mut rest = new;
        if !self.started {
            match rest.iter().position(|b| !matches!(b, b'\r' | b'\n')) {
                Some(first) => {
                    self.started = true;
                    self.ends = 0;
                    rest = &rest[first..];
                }
                None => {
                    self.bytes += new.len();
                    return Scanned::More;
                }
            }
        }
        let base = self.bytes + (new.len() - rest.len());
        let mut line = 0;
        for nl in memchr::memchr_iter(b'\n', rest) {
            if rest[line..nl].iter().all(|&b| b == b'\r') {
                self.ends += 1;
            } else {
                self.ends = 1;
            }
            if self.ends == 2 {
                return if base + nl > max {
                    Scanned::TooLarge
                } else {
                    Scanned::End
                };
            }
            line = nl + 1;
        }
        if !rest[line..].iter().all(|&b| b == b'\r') {
            self.ends = 0;
        }
        self.bytes += new.len();
        if base + rest.len() > max {
            Scanned::TooLarge
        } else {
            Scanned::More
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The byte-at-a-time scan this replaces: the oracle.
    fn reference(state: &mut (usize, bool, u8), new: &[u8], max: usize) -> Scanned {
        let (bytes, started, ends) = state;
        for (i, b) in new.iter().enumerate() {
            match b {
                b'\r' | b'\n' if !*started => continue,
                b'\n' => *ends += 1,
                b'\r' => {}
                _ => {
                    *started = true;
                    *ends = 0;
                }
            }
            if *ends == 2 {
                return Scanned::End;
            }
            if *bytes + i + 1 > max {
                return Scanned::TooLarge;
            }
        }
        *bytes += new.len();
        Scanned::More
    }

    #[test]
    fn ends_at_the_first_empty_line() {
        let mut s = HeadScan::default();
        assert_eq!(
            s.feed(b"\r\nGET / HTTP/1.1\r\nHost: a\r", 100),
            Scanned::More
        );
        assert_eq!(s.feed(b"\n\r", 100), Scanned::More);
        assert_eq!(s.feed(b"\nbody", 100), Scanned::End);
        let mut s = HeadScan::default();
        assert_eq!(s.feed(b"GET / HTTP/1.1\nHost: a\n\n", 100), Scanned::End);
        let mut s = HeadScan::default();
        assert_eq!(s.feed(b"GET / HTTP/1.1\r\nX: \r\r\n", 100), Scanned::More);
    }

    #[test]
    fn a_head_over_the_limit_is_too_large_even_split_across_reads() {
        let mut s = HeadScan::default();
        assert_eq!(s.feed(&[b'a'; 60], 100), Scanned::More);
        assert_eq!(s.feed(&[b'a'; 41], 100), Scanned::TooLarge);
    }

    fn chunks() -> impl Strategy<Value = Vec<Vec<u8>>> {
        let byte = prop_oneof![
            Just(b'\r'),
            Just(b'\n'),
            Just(b'a'),
            Just(b':'),
            any::<u8>()
        ];
        prop::collection::vec(prop::collection::vec(byte, 0..40), 1..8)
    }

    proptest! {
        /// Same answer as the byte-at-a-time scan for any bytes in any split, and the same
        /// state carried to the next read.
        #[test]
        fn agrees_with_the_byte_at_a_time_scan(reads in chunks(), max in 0usize..200) {
            let mut fast = HeadScan::default();
            let mut slow = (0, false, 0);
            for read in &reads {
                let (a, b) = (fast.feed(read, max), reference(&mut slow, read, max));
                prop_assert_eq!(a, b);
                if a != Scanned::More {
                    break;
                }
                prop_assert_eq!((fast.bytes, fast.started, fast.ends), slow);
            }
        }
    }
}
