//! The streaming check of a body that could carry a method override (`crate::form`).
//!
//! Each raw byte is decoded the way some framework decodes it (percent escapes; backslash
//! escapes: JSON's `\u005f`, a quoted-pair's `\o`; NUL bytes, as UTF-16 and UTF-32 text has
//! them, dropped), and the decoded text is matched as a framework reads a field name.

use super::preamble::Preamble;

/// What would let a framework read an override field; see [`Scanner::feed`].
const WORD: &[u8; 6] = b"method";
const DISPOSITION: &[u8; 19] = b"content-disposition";
/// The longest part-header line a multipart body may have, in bytes (PHP splits lines at its
/// 5,120-byte buffer; browsers' lines are far shorter).
const MAX_HEADER_LINE: usize = 4096;

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
///   In a multipart body's part headers (after any line that starts with `--`, as every
///   boundary line does, up to a blank line: LF LF or LF CR LF), lines are read as PHP's
///   `main/rfc1867.c` reads them too. A line ends at LF only (a CR right before it is
///   dropped). A line break leaves a name in progress open, since PHP glues a line without `:`
///   onto the one before it (`name="_met` CRLF `hod"` is `_method`). A NUL drops the rest of
///   its line for PHP, which reads each line as a C string, so the next line resumes the name
///   as it was at the NUL (`"_met` NUL `x` CRLF `hod"`). A line of 4,096 bytes or more is
///   refused, since PHP splits a line that does not fit its 5 KiB buffer into two.
/// - `name*` in a `Content-Disposition` line: an RFC 2231 extended or continued `name`
///   parameter, which Werkzeug joins and decodes (`name*0="_me"; name*1="thod"`). A line ends
///   at a raw LF that is not followed by a space or tab (folding); a decoded `%0A` does not
///   end it.
#[derive(Debug)]
pub struct Scanner {
    /// The body is multipart (its `Content-Type` says so): part headers are read as PHP does.
    multipart: bool,
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
    /// In multipart part headers: after a line that starts with `--`, to the next blank line.
    in_headers: bool,
    /// Where the raw line is: 0 inside it, 1 just after its LF, 2 after LF CR (an LF at 1 or
    /// 2 makes a blank line).
    line: u8,
    /// Raw bytes since the last LF.
    line_len: usize,
    /// How many of the line's first two bytes are `-` (2: a boundary line, perhaps).
    dashes: u8,
    /// A raw CR in part headers, held until the next byte tells whether it ends the line.
    cr: bool,
    /// A multipart body's preamble, where lines of [`MAX_HEADER_LINE`] bytes are refused too.
    preamble: Preamble,
    /// The name in progress when a NUL cut a part-header line short for PHP, which resumes it
    /// on the next line.
    cut: Option<Resume>,
}

/// What a name in progress is made of, to resume it after a NUL (see [`Scanner::cut`]).
#[derive(Debug, Clone, Copy)]
struct Resume {
    percent: Option<Option<u8>>,
    backslash: Option<Option<(u32, u8)>>,
    lead: bool,
    opened: bool,
    word: usize,
}

impl Default for Scanner {
    /// A scanner for a multipart body (the stricter reading).
    fn default() -> Scanner {
        Scanner::new(true)
    }
}

impl Scanner {
    /// A scanner for a body that is `multipart` or not, by its `Content-Type`.
    ///
    /// A multipart body's preamble (before its first boundary line, as PHP finds it) lasts to
    /// the end unless [`Scanner::with_boundary`] says what the boundary is.
    pub fn new(multipart: bool) -> Scanner {
        Scanner {
            multipart,
            percent: None,
            backslash: None,
            recent: [0; 6],
            lead: true, // the body starts a name
            opened: false,
            word: 0,
            disposition: 0,
            in_disposition: 0,
            in_headers: false,
            line: 1,
            line_len: 0,
            dashes: 0,
            cr: false,
            preamble: Preamble::new(None),
            cut: None,
        }
    }

    /// The boundary PHP reads from the body's `Content-Type` (`form::php_boundary`): the
    /// preamble ends at the first line that is `--` and it.
    pub fn with_boundary(mut self, boundary: &[u8]) -> Scanner {
        self.preamble = Preamble::new(Some(boundary));
        self
    }

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
        if raw == b'\n' {
            return self.line_end();
        }
        self.line = if raw == b'\r' && self.line == 1 { 2 } else { 0 };
        if self.line_len < 2 && raw == b'-' {
            self.dashes += 1;
        }
        self.line_len += 1;
        if self.multipart {
            self.preamble.byte(raw);
            if self.preamble.open() && self.line_len >= MAX_HEADER_LINE {
                return false;
            }
        }
        if !self.in_headers {
            return self.percent_decode(raw);
        }
        if self.line_len >= MAX_HEADER_LINE || !self.take_cr() {
            return false;
        }
        if raw == b'\r' {
            self.cr = true; // dropped if an LF follows, a byte of the line otherwise
            return true;
        }
        self.percent_decode(raw)
    }

    /// A raw LF: the end of a line. A blank line ends part headers; a line that starts with
    /// `--` starts them (in a multipart body).
    fn line_end(&mut self) -> bool {
        let (blank, boundary) = (self.line != 0, self.dashes == 2);
        self.preamble.line_end();
        (self.line, self.line_len, self.dashes) = (1, 0, 0);
        if blank {
            self.in_headers = false;
        }
        let ok = if self.in_headers {
            self.cr = false;
            self.header_break()
        } else {
            self.take_cr() && self.percent_decode(b'\n')
        };
        if boundary {
            self.in_headers = self.multipart;
        }
        ok
    }

    /// A held CR that turned out not to end its line: one more byte of it.
    fn take_cr(&mut self) -> bool {
        !std::mem::take(&mut self.cr) || self.percent_decode(b'\r')
    }

    /// The end of a part-header line. It ends a complete word and starts a name, but leaves
    /// a name in progress open: PHP joins the next line to this one, as it read it (up to a
    /// NUL, where the name is resumed from; `%` is no escape there).
    fn header_break(&mut self) -> bool {
        if self.word == WORD.len() {
            return false;
        }
        if let Some(r) = self.cut.take() {
            (self.percent, self.backslash) = (r.percent, r.backslash);
            (self.lead, self.opened, self.word) = (r.lead, r.opened, r.word);
        } else if self.percent.is_some() && !self.flush_percent() {
            return false;
        }
        self.lead = true;
        true
    }

    /// A `%` (and its digit) that turned out to be no escape: they stand for themselves.
    fn flush_percent(&mut self) -> bool {
        match self.percent.take() {
            Some(pending) => self.unescape(b'%') && pending.is_none_or(|h| self.unescape(h)),
            None => true,
        }
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
            pending @ Some(_) => {
                self.percent = pending;
                self.flush_percent() && self.percent_decode(raw)
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
                self.cut = Some(Resume {
                    percent: self.percent,
                    backslash: self.backslash,
                    lead: self.lead,
                    opened: self.opened,
                    word: self.word,
                });
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
