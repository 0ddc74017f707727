//! The streaming check of a body that could carry a method override (`crate::form`).
//!
//! Each raw byte is decoded the way some framework decodes it (percent escapes; backslash
//! escapes: JSON's `\u005f`, a quoted-pair's `\o`; NUL bytes, as UTF-16 and UTF-32 text has
//! them, dropped), and the decoded text is matched as a framework reads a field name.

/// What would let a framework read an override field; see [`Scanner::feed`].
const WORD: &[u8; 6] = b"method";
const DISPOSITION: &[u8; 19] = b"content-disposition";

/// Checks a body as it streams, one chunk at a time. State is carried across chunks, so a
/// name split between chunks is still found.
///
/// It stops at the first byte that completes one of these in the decoded text:
/// - a field named `_method`, in any case. That is `method` right after one `_`, `.` or `[`
///   (PHP reads the last two as `_`), which comes right after the start of a name (any byte
///   but a letter, digit, `_`, `.` or `-`, optionally followed by spaces, which PHP strips).
///   It is found at the byte after the word, if that byte ends a name (anything but a letter,
///   digit, `_`, `.` or `-`). So `_method=`, `"_method"`, `&.method[]=` and `\u005fmethod`
///   count, and `payment_method`, `__method`, `Methodist` and `this method` do not.
///   In multipart part headers (from a `Content-Disposition` line to the blank line after it),
///   read as PHP reads them: a raw line break leaves a name in progress open, since PHP glues
///   a header line without `:` onto the one before it (`name="_met` CRLF `hod"` is `_method`),
///   and a NUL drops the rest of its line, PHP reading each line as a C string
///   (`"_met` NUL `x` CRLF `hod"`).
/// - `name*` in a `Content-Disposition` line: an RFC 2231 extended or continued `name`
///   parameter, which Werkzeug joins and decodes (`name*0="_me"; name*1="thod"`). A line ends
///   at a raw LF that is not followed by a space or tab (folding); a decoded `%0A` does not
///   end it.
#[derive(Debug)]
pub struct Scanner {
    /// A `%` and up to one hex digit waiting for the rest of the escape.
    percent: Option<Option<u8>>,
    /// A backslash escape in progress: `Some(None)` after `\`, `Some(Some((code, digits)))` inside
    /// `\uXXXX`.
    backslash: Option<Option<(u32, u8)>>,
    /// The last decoded bytes, newest last.
    recent: [u8; 6],
    /// At the start of a name (after a name-starting byte and any spaces).
    lead: bool,
    /// The byte before the word was one `_`, `.` or `[` at the start of a name.
    opened: bool,
    /// How much of `WORD` the text ends with, after an opener.
    word: usize,
    /// How much of `DISPOSITION` the text ends with.
    disposition: usize,
    /// Inside a `Content-Disposition` line: 0 no, 1 yes, 2 just after its raw LF.
    in_disposition: u8,
    /// In multipart part headers: from a `Content-Disposition` line to the next blank line.
    in_headers: bool,
    /// At the start of a raw line (after LF, and any CR): an LF here is a blank line.
    line_start: bool,
    /// The name in progress (`word`, `opened`) when a NUL cut its header line short: PHP
    /// resumes it on the next line.
    cut: Option<(usize, bool)>,
}

impl Default for Scanner {
    fn default() -> Scanner {
        Scanner {
            percent: None,
            backslash: None,
            recent: [0; 6],
            lead: true, // the body starts a name
            opened: false,
            word: 0,
            disposition: 0,
            in_disposition: 0,
            in_headers: false,
            line_start: true,
            cut: None,
        }
    }
}

impl Scanner {
    /// Feeds the next chunk. Returns how many of its bytes may be forwarded: `chunk.len()`
    /// when none completes what the scanner refuses, otherwise the bytes before that one. The
    /// caller then refuses the request and forwards nothing more.
    pub fn feed(&mut self, chunk: &[u8]) -> usize {
        for (i, &raw) in chunk.iter().enumerate() {
            if !self.raw(raw) {
                return i;
            }
        }
        chunk.len()
    }

    /// One raw byte; `false` when it completes what is refused.
    fn raw(&mut self, raw: u8) -> bool {
        // Folding and the end of a Content-Disposition line are told by raw bytes only.
        if self.in_disposition == 2 {
            self.in_disposition = u8::from(raw == b' ' || raw == b'\t');
        }
        if raw == b'\n' && self.in_disposition == 1 {
            self.in_disposition = 2;
        }
        if raw == b'\n' && self.line_start {
            self.in_headers = false; // the blank line after a part's headers
        }
        self.line_start = raw == b'\n' || (raw == b'\r' && self.line_start);
        if self.in_headers && matches!(raw, b'\r' | b'\n') && self.percent.is_none() {
            return self.header_break();
        }
        self.percent_decode(raw)
    }

    /// A raw line break in part headers: it ends a complete word and starts a name, but leaves
    /// a name in progress open (PHP joins the next line to it), resumed from before a NUL that
    /// cut this line short.
    fn header_break(&mut self) -> bool {
        if self.word == WORD.len() {
            return false;
        }
        if let Some((word, opened)) = self.cut.take() {
            if word >= self.word {
                (self.word, self.opened) = (word, opened);
            }
        }
        self.lead = true;
        true
    }

    /// One raw byte, through percent escapes.
    fn percent_decode(&mut self, raw: u8) -> bool {
        match self.percent.take() {
            None if raw == b'%' => {
                self.percent = Some(None);
                true
            }
            None => self.unescape(raw),
            Some(None) if raw.is_ascii_hexdigit() => {
                self.percent = Some(Some(raw));
                true
            }
            Some(Some(h)) if raw.is_ascii_hexdigit() => self.unescape(hex(h) << 4 | hex(raw)),
            Some(pending) => {
                // Not an escape after all: `%` (and its digit) stand for themselves.
                if !self.unescape(b'%') || pending.is_some_and(|h| !self.unescape(h)) {
                    return false;
                }
                self.percent_decode(raw)
            }
        }
    }

    /// A percent-decoded byte, through backslash escapes.
    fn unescape(&mut self, b: u8) -> bool {
        match self.backslash.take() {
            None if b == b'\\' => {
                self.backslash = Some(None);
                true
            }
            None => self.decoded(b),
            Some(None) if b == b'u' || b == b'U' => {
                self.backslash = Some(Some((0, 0)));
                true
            }
            // `\o` is `o` (a quoted-pair), `\"` is `"`.
            Some(None) => self.decoded(b),
            Some(Some((code, n))) if b.is_ascii_hexdigit() => {
                let code = code << 4 | u32::from(hex(b));
                if n == 3 {
                    // A character outside ASCII stands for no letter, digit or punctuation.
                    self.decoded(u8::try_from(code).ok().filter(u8::is_ascii).unwrap_or(0x80))
                } else {
                    self.backslash = Some(Some((code, n + 1)));
                    true
                }
            }
            Some(Some(_)) => self.decoded(b'u') && self.decoded(b),
        }
    }

    /// One decoded byte.
    fn decoded(&mut self, b: u8) -> bool {
        if b == 0 {
            // Dropped (UTF-16 and UTF-32 text has them between ASCII letters), but it ends a
            // name: PHP reads names as C strings (`_method%00x` is `_method`). In part headers
            // PHP also drops the rest of the line: the name in progress is kept for the next.
            if self.in_headers && self.cut.is_none() {
                self.cut = Some((self.word, self.opened));
            }
            return self.word != WORD.len();
        }
        let lower = b.to_ascii_lowercase();
        let in_name = lower.is_ascii_alphanumeric() || matches!(lower, b'_' | b'.' | b'-');
        // The word is complete and this byte ends the name: a field named `_method`.
        if self.word == WORD.len() && !in_name {
            return false;
        }
        // `name*` in a Content-Disposition line (not `filename*`).
        if self.in_disposition == 1
            && b == b'*'
            && self.recent[2..].eq_ignore_ascii_case(b"name")
            && !self.recent[1].is_ascii_alphabetic()
        {
            return false;
        }
        self.word = match self.word {
            0 if lower == WORD[0] && self.opened => 1,
            n if n > 0 && n < WORD.len() && lower == WORD[n] => n + 1,
            _ => 0,
        };
        self.opened = self.lead && matches!(b, b'_' | b'.' | b'[');
        if !matches!(b, b' ' | b'+') {
            self.lead = !in_name;
        }
        self.disposition = match self.disposition {
            n if lower == DISPOSITION[n] => n + 1,
            _ => usize::from(lower == DISPOSITION[0]),
        };
        if self.disposition == DISPOSITION.len() {
            self.disposition = 0;
            self.in_disposition = 1;
            self.in_headers = true;
        }
        self.recent.rotate_left(1);
        self.recent[5] = lower;
        true
    }
}

/// The value of an ASCII hex digit.
fn hex(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        _ => (d | 0x20) - b'a' + 10,
    }
}

/// Whether [`Scanner`] refuses `body` (stops before its end), fed in one chunk. For fuzzing
/// and property tests.
pub fn refuses(body: &[u8]) -> bool {
    Scanner::default().feed(body) < body.len()
}
