//! Objects framed other than one JSON object per line, turned into lines as they are read:
//! concatenated objects (`{…}{…}`, Firehose's default), a top-level array (`[{…},{…}]`) or an
//! array under a key of a top-level object (`{"Records": [{…}]}`, CloudTrail's). Each record
//! becomes one line, so the decoder, its quarantine (a record's position stands for the line
//! number) and the exactly-once accounting are those of NDJSON, for objects of any size.
//!
//! A record keeps its bytes, except line breaks between its tokens, which become spaces (a
//! line break is whitespace in JSON), and a raw line break inside a string (which JSON does not
//! allow), which becomes U+0001 so that the decoder refuses the record as it would have.

use std::io::Read;
use std::str::FromStr;

use crate::error::Error;
/// The UTF-8 byte order mark some writers put first.
pub(crate) const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// How records are laid out in an object (`INLET_FRAMING`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Framing {
    /// One JSON object per line (`ndjson`, the default).
    #[default]
    Lines,
    /// JSON values one after another, with or without whitespace between (`concatenated`).
    Concatenated,
    /// One top-level JSON array of records (`array`).
    Array,
    /// The array under `key` of one top-level object (`array:<key>`, `array:Records`).
    NamedArray(String),
}

impl FromStr for Framing {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        match text.trim() {
            "" | "ndjson" => Ok(Self::Lines),
            "concatenated" => Ok(Self::Concatenated),
            "array" => Ok(Self::Array),
            other => match other.strip_prefix("array:") {
                Some(key) if !key.is_empty() && !key.contains(['"', '\\']) => Ok(Self::NamedArray(key.to_string())),
                _ => Err(Error::Config(format!(
                    "INLET_FRAMING {other:?}: expected ndjson, concatenated, array or array:<key> (a key with no quote or backslash)"
                ))),
            },
        }
    }
}

impl std::fmt::Display for Framing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Lines => f.write_str("ndjson"),
            Self::Concatenated => f.write_str("concatenated"),
            Self::Array => f.write_str("array"),
            Self::NamedArray(key) => write!(f, "array:{key}"),
        }
    }
}

impl Framing {
    /// Why an object was refused, as its failure says it.
    pub fn refusal(&self, reason: &str) -> String {
        format!("not framed as INLET_FRAMING={self} says: {reason}")
    }

    /// The framing of the object `key`: a replay object's lines are one record each, whatever
    /// the table's framing (the quarantine keeps records one per line).
    pub fn of_key(&self, key: &str) -> &Framing {
        if crate::layout::is_replay_key(key) { &Framing::Lines } else { self }
    }

    /// Whether objects are read as they are (one record per line).
    pub fn is_lines(&self) -> bool {
        *self == Self::Lines
    }

    /// The lines of a whole object, or why its framing is not this one.
    pub fn to_lines(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let mut lines = Vec::with_capacity(data.len() + data.len() / 64);
        let mut framer = Framer::new(self.clone());
        framer.feed(data, &mut lines)?;
        framer.finish(&mut lines)?;
        Ok(lines)
    }

    /// `reader`'s bytes as lines, read as they are needed; more than `max_input` bytes read
    /// is an [`InputTooLarge`] error (bytes a framing skips make no lines to count).
    pub fn lines_of<R: Read>(&self, reader: R, max_input: u64) -> FramedReader<R> {
        FramedReader {
            inner: reader,
            framer: Framer::new(self.clone()),
            input: vec![0; 64 * 1024],
            out: Vec::new(),
            at: 0,
            done: false,
            read: 0,
            max_input,
        }
    }
}

/// A reader of an object's records as lines; a framing error is an `InvalidData` I/O error
/// whose inner error is a [`FramingError`].
pub struct FramedReader<R> {
    inner: R,
    framer: Framer,
    input: Vec<u8>,
    out: Vec<u8>,
    at: usize,
    done: bool,
    read: u64,
    max_input: u64,
}

/// An object read past the most bytes it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the object holds more bytes than it may")]
pub struct InputTooLarge;

/// Why an object's bytes are not in the framing declared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FramingError(pub String);

impl<R: Read> Read for FramedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.out.len() && !self.done {
            self.out.clear();
            self.at = 0;
            let read = self.inner.read(&mut self.input)?;
            self.read += read as u64;
            if self.read > self.max_input {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, InputTooLarge));
            }
            let framed = if read == 0 {
                self.done = true;
                self.framer.finish(&mut self.out)
            } else {
                self.framer.feed(&self.input[..read], &mut self.out)
            };
            framed.map_err(|reason| std::io::Error::new(std::io::ErrorKind::InvalidData, FramingError(reason)))?;
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Where the framer is in the object's structure.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    /// Before the top-level value.
    Start,
    /// Concatenated: between records.
    Between,
    /// In an array, before its first element or its end.
    ArrayFirst,
    /// In an array, after a comma.
    ArrayNext,
    /// In an array, after an element.
    ArrayAfterElement,
    /// In the top-level object, before its first key or its end.
    FirstKey,
    /// In the top-level object, after a comma.
    NextKey,
    /// In a key: its raw bytes so far, and whether the last was a backslash.
    Key(Vec<u8>, bool),
    /// After a key, before its colon; whether it is the wanted key.
    Colon(bool),
    /// After a colon, before the value; whether it is the wanted key's.
    Value(bool),
    /// After a value of the top-level object.
    AfterValue,
    /// After the top-level value: only whitespace may follow.
    Done,
}

/// A value being read: its nesting depth and string state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Scan {
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// Whether the value is a record (written out) or skipped.
    record: bool,
    /// Whether a comma or closing bracket ends it (an array element, an object's value)
    /// rather than its own end (a concatenated record).
    delimited: bool,
    /// A concatenated bare scalar (number, literal): whitespace or a new value ends it.
    bare: bool,
    /// A delimited value read whole (its container or string closed, or whitespace after a
    /// scalar): only whitespace may come before its delimiter.
    closed: bool,
    /// Whether it has any byte yet.
    started: bool,
}

/// How a byte leaves a value being read.
enum Step {
    /// Part of the value.
    Within,
    /// The value's last byte.
    Last,
    /// Past the value: the byte belongs to what follows.
    After,
    /// A byte that cannot follow a delimited value read whole (two records with no comma).
    Stray,
}

impl Scan {
    fn step(&mut self, byte: u8) -> Step {
        if self.in_string {
            match (self.escaped, byte) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => {
                    self.in_string = false;
                    if self.depth == 0 {
                        if !self.delimited {
                            return Step::Last;
                        }
                        self.closed = true;
                    }
                }
                _ => {}
            }
            return Step::Within;
        }
        if self.depth == 0 {
            if self.delimited && matches!(byte, b',' | b']' | b'}') {
                return Step::After;
            }
            if self.bare && (is_space(byte) || matches!(byte, b'{' | b'[' | b'"')) {
                return Step::After;
            }
            if self.delimited && is_space(byte) {
                self.closed |= self.started;
                return Step::Within;
            }
            if self.closed {
                return Step::Stray;
            }
        }
        self.started = true;
        match byte {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.depth = self.depth.saturating_add(1),
            b'}' | b']' if self.depth > 0 => {
                self.depth -= 1;
                if self.depth == 0 {
                    if !self.delimited {
                        return Step::Last;
                    }
                    self.closed = true;
                }
            }
            _ => {}
        }
        Step::Within
    }
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// The state machine turning framed bytes into lines.
struct Framer {
    framing: Framing,
    place: Place,
    value: Option<Scan>,
    /// Bytes of the byte order mark matched at the start.
    bom: usize,
    /// Whether the wanted key's array was found.
    found: bool,
}

impl Framer {
    fn new(framing: Framing) -> Self {
        Self { framing, place: Place::Start, value: None, bom: 0, found: false }
    }

    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        for &byte in input {
            if self.place == Place::Start && self.bom < BYTE_ORDER_MARK.len() {
                if byte == BYTE_ORDER_MARK[self.bom] {
                    self.bom += 1;
                    continue;
                }
                // Not a byte order mark after all: its bytes are the object's.
                for &prefix in &BYTE_ORDER_MARK[..self.bom] {
                    self.byte(prefix, out)?;
                }
                self.bom = BYTE_ORDER_MARK.len();
            }
            self.byte(byte, out)?;
        }
        Ok(())
    }

    fn byte(&mut self, byte: u8, out: &mut Vec<u8>) -> Result<(), String> {
        if let Some(mut scan) = self.value {
            match scan.step(byte) {
                Step::Within => {
                    self.value = Some(scan);
                    write(scan, byte, out);
                    return Ok(());
                }
                Step::Last => {
                    write(scan, byte, out);
                    self.end_value(scan, out);
                    return Ok(());
                }
                Step::After => self.end_value(scan, out),
                Step::Stray => return Err(format!("found {} after a value, where `,` should be", shown(byte))),
            }
        }
        self.structure(byte, out)
    }

    /// Ends the value being read; the place moves past it.
    fn end_value(&mut self, scan: Scan, out: &mut Vec<u8>) {
        self.value = None;
        if scan.record {
            out.push(b'\n');
        }
        self.place = match self.place {
            Place::ArrayFirst | Place::ArrayNext => Place::ArrayAfterElement,
            Place::Value(_) => Place::AfterValue,
            ref other => other.clone(),
        };
    }

    /// Starts a value at `byte`.
    fn start_value(&mut self, byte: u8, scan: Scan, out: &mut Vec<u8>) -> Result<(), String> {
        self.value = Some(scan);
        self.byte(byte, out)
    }

    /// A byte outside any value: whitespace, or the structure around the records.
    fn structure(&mut self, byte: u8, out: &mut Vec<u8>) -> Result<(), String> {
        let found = |what: &str| format!("found {} where {what} should be", shown(byte));
        if is_space(byte) && !matches!(self.place, Place::Key(..)) {
            return Ok(());
        }
        let record = |delimited: bool, bare: bool| Scan { record: true, delimited, bare, ..Scan::default() };
        match std::mem::replace(&mut self.place, Place::Done) {
            Place::Start => match &self.framing {
                Framing::Lines | Framing::Concatenated => {
                    self.place = Place::Between;
                    return self.structure(byte, out);
                }
                Framing::Array if byte == b'[' => self.place = Place::ArrayFirst,
                Framing::Array => return Err(found("the array's `[`")),
                Framing::NamedArray(_) if byte == b'{' => self.place = Place::FirstKey,
                Framing::NamedArray(key) => return Err(found(&format!("an object holding \"{key}\""))),
            },
            Place::Between => {
                self.place = Place::Between;
                let bare = !matches!(byte, b'{' | b'[' | b'"');
                return self.start_value(byte, record(false, bare), out);
            }
            Place::ArrayFirst | Place::ArrayAfterElement if byte == b']' => self.end_array(),
            Place::ArrayAfterElement if byte == b',' => self.place = Place::ArrayNext,
            Place::ArrayAfterElement => return Err(found("`,` or `]` after an element")),
            place @ (Place::ArrayFirst | Place::ArrayNext) => {
                if matches!(byte, b',' | b']') {
                    return Err(found("an element"));
                }
                self.place = place;
                let wanted = self.framing == Framing::Array || self.found;
                return self.start_value(byte, Scan { record: wanted, ..record(true, false) }, out);
            }
            Place::FirstKey if byte == b'}' => self.place = Place::Done,
            Place::FirstKey | Place::NextKey if byte == b'"' => self.place = Place::Key(Vec::new(), false),
            Place::FirstKey | Place::NextKey => return Err(found("a key")),
            Place::Key(mut key, escaped) => {
                let wanted = match &self.framing {
                    Framing::NamedArray(name) => name.as_bytes(),
                    _ => &[],
                };
                if byte == b'"' && !escaped {
                    if key == wanted && self.found {
                        return Err(format!("the object holds \"{}\" twice", String::from_utf8_lossy(wanted)));
                    }
                    self.place = Place::Colon(key == wanted);
                } else {
                    // A key longer than the wanted one is not it: only that much is kept.
                    if key.len() <= wanted.len() {
                        key.push(byte);
                    }
                    self.place = Place::Key(key, !escaped && byte == b'\\');
                }
            }
            Place::Colon(wanted) if byte == b':' => self.place = Place::Value(wanted),
            Place::Colon(_) => return Err(found("`:` after a key")),
            Place::Value(true) if byte == b'[' => {
                self.found = true;
                self.place = Place::ArrayFirst;
            }
            Place::Value(true) => return Err(found("the records' array")),
            Place::Value(false) => {
                self.place = Place::Value(false);
                return self.start_value(byte, Scan { delimited: true, ..Scan::default() }, out);
            }
            Place::AfterValue if byte == b',' => self.place = Place::NextKey,
            Place::AfterValue if byte == b'}' => self.place = Place::Done,
            Place::AfterValue => return Err(found("`,` or `}` after a value")),
            Place::Done => return Err(found("the end of the object")),
        }
        Ok(())
    }

    /// The records' array has ended.
    fn end_array(&mut self) {
        self.place = if self.framing == Framing::Array { Place::Done } else { Place::AfterValue };
    }

    /// The end of the object: a concatenated record cut short is a line of its own (the
    /// decoder refuses it); any other framing must be complete.
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        if let Some(scan) = self.value.take() {
            if scan.delimited && (scan.depth > 0 || scan.in_string) {
                return Err("the object ends inside a value".into());
            }
            if scan.delimited {
                return Err("the object ends before its closing bracket".into());
            }
            self.end_value(scan, out);
        }
        match (&self.framing, &self.place) {
            (_, Place::Start) | (Framing::Lines | Framing::Concatenated, _) | (Framing::Array, Place::Done) => Ok(()),
            (Framing::NamedArray(_), Place::Done) if self.found => Ok(()),
            (Framing::NamedArray(key), Place::Done) => Err(format!("the object holds no \"{key}\" array")),
            _ => Err("the object ends before its closing bracket".into()),
        }
    }
}

/// A value's byte, written when the value is a record.
fn write(scan: Scan, byte: u8, out: &mut Vec<u8>) {
    if scan.record {
        out.push(match byte {
            b'\n' | b'\r' if scan.in_string => 0x01,
            b'\n' | b'\r' => b' ',
            other => other,
        });
    }
}

/// A byte as an error shows it.
fn shown(byte: u8) -> String {
    if byte.is_ascii_graphic() { format!("`{}`", byte as char) } else { format!("byte 0x{byte:02x}") }
}

#[cfg(test)]
mod tests;
