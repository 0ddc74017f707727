//! Where a multipart body's preamble ends, as PHP's `main/rfc1867.c` finds it: at the first
//! line that is exactly `--` and the boundary (`find_boundary`, `strcmp` on a line read as a C
//! string: one CR before the LF dropped, nothing after a NUL). Until then PHP reads lines
//! through its 5 KiB buffer, splitting longer ones, so a split could start a boundary line the
//! scan never saw; [`crate::form::Scanner`] refuses long lines there.

/// The preamble of one multipart body, fed raw bytes (see the module docs).
#[derive(Debug, Clone)]
pub(super) struct Preamble {
    /// `--` and the boundary; `None`: not known for sure, so the preamble never ends.
    delimiter: Option<Vec<u8>>,
    /// How the current line compares with the delimiter.
    line: Compare,
    /// The preamble is over: a delimiter line was seen.
    over: bool,
}

/// How the current raw line compares with the delimiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    /// Its first `n` bytes are the delimiter's.
    Prefix(usize),
    /// The whole delimiter, then a CR (dropped if the LF follows).
    Cr,
    /// The whole delimiter, then a NUL: the rest of the line is not read.
    Cut,
    /// Not the delimiter.
    Other,
}

impl Preamble {
    /// The preamble of a body with `boundary` (PHP's reading of `Content-Type`, see
    /// `crate::form::php_boundary`); `None` keeps it open to the end.
    pub(super) fn new(boundary: Option<&[u8]>) -> Preamble {
        Preamble {
            delimiter: boundary.map(|b| [b"--", b].concat()),
            line: Compare::Prefix(0),
            over: false,
        }
    }

    /// Whether the body is still in its preamble.
    pub(super) fn open(&self) -> bool {
        !self.over
    }

    /// One raw byte of the line, not its LF.
    pub(super) fn byte(&mut self, raw: u8) {
        let Some(d) = &self.delimiter else { return };
        self.line = match self.line {
            Compare::Prefix(n) if n < d.len() && d[n] == raw => Compare::Prefix(n + 1),
            Compare::Prefix(n) if n == d.len() && raw == b'\r' => Compare::Cr,
            Compare::Prefix(n) if n == d.len() && raw == 0 => Compare::Cut,
            Compare::Cut => Compare::Cut,
            _ => Compare::Other,
        };
    }

    /// The line's LF: a delimiter line ends the preamble.
    pub(super) fn line_end(&mut self) {
        let whole = self.delimiter.as_ref().map_or(0, Vec::len);
        let delimiter = match self.line {
            Compare::Prefix(n) => self.delimiter.is_some() && n == whole,
            Compare::Cr | Compare::Cut => true,
            Compare::Other => false,
        };
        self.over |= delimiter;
        self.line = Compare::Prefix(0);
    }
}
