//! Reading dataset files as a stream of records: CSV/TSV, JSON arrays, JSON Lines and Parquet,
//! in UTF-8 (with or without BOM), UTF-16 (with BOM) or a legacy single-byte encoding.
//!
//! Every reader pushes one [`Record`] at a time into a callback, so memory is bounded by the
//! largest row, not by the file. Errors are located: `file.jsonl:17: …`, `file.json: item 3: …`.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use encoding_rs::Encoding;
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::thresholds::MAX_ROW_BYTES;
use crate::{Error, Result};

/// The layout of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Delimited text with a header row (comma, tab, semicolon or pipe).
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

/// What [`sniff`] found out about a file before reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sniffed {
    /// Layout.
    pub format: Format,
    /// Field delimiter (CSV only).
    pub delimiter: u8,
    /// Text encoding (UTF-8 for Parquet).
    pub encoding: &'static Encoding,
    /// The file starts with a byte-order mark.
    pub bom: bool,
    /// The text was not UTF-8 and is converted from [`Sniffed::encoding`] (a legacy code page
    /// guessed from the bytes): worth a look in the report.
    pub converted: bool,
    /// File size in bytes.
    pub bytes: u64,
}

impl Sniffed {
    /// The encoding as people name it: `UTF-8`, `UTF-8 (BOM)`, `UTF-16LE`, `windows-1252`.
    pub fn encoding_name(&self) -> String {
        match (self.encoding.name(), self.bom) {
            (name, true) => format!("{name} (BOM)"),
            (name, false) => name.to_string(),
        }
    }
}

pub use api::dataset::Loc;

/// The fields of a row: column name → value.
pub type Fields = Map<String, Value>;

/// One row of a file: column name → value.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Where it starts.
    pub loc: Loc,
    /// Its fields (CSV fields are strings).
    pub fields: Map<String, Value>,
}

/// Reads the start of `path` to decide its format and encoding. Empty and binary files are
/// refused here, with a one-line reason.
pub fn sniff(path: &Path) -> Result<Sniffed> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let bytes = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    (&mut f).take(SNIFF_BYTES as u64).read_to_end(&mut head).map_err(|e| Error::io(path, e))?;
    sniff_bytes(path, &head, bytes)
}

/// Streams the records of `path` into `each`, in file order; an error from `each` stops the
/// read and is returned.
pub fn read(
    path: &Path,
    sniffed: &Sniffed,
    each: &mut dyn FnMut(Record) -> Result<()>,
) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    match sniffed.format {
        Format::Parquet => read_parquet(path, file, each),
        _ => read_text(path, file, sniffed, each),
    }
}

/// Sniffs and reads a file already in memory (`name` gives the extension and the messages).
/// The fuzz targets enter here.
pub fn read_bytes(
    name: &Path,
    bytes: &[u8],
    each: &mut dyn FnMut(Record) -> Result<()>,
) -> Result<Sniffed> {
    let sniffed = sniff_bytes(name, &bytes[..bytes.len().min(SNIFF_BYTES)], bytes.len() as u64)?;
    match sniffed.format {
        Format::Parquet => read_parquet(name, bytes::Bytes::copy_from_slice(bytes), each)?,
        _ => read_text(name, bytes, &sniffed, each)?,
    }
    Ok(sniffed)
}

fn read_text(
    path: &Path,
    r: impl Read,
    sniffed: &Sniffed,
    each: &mut dyn FnMut(Record) -> Result<()>,
) -> Result<()> {
    match sniffed.format {
        Format::Csv => read_csv(path, text_reader(r, sniffed), sniffed.delimiter, each),
        Format::Jsonl => jsonl_lines_from(path, r, sniffed, &mut |line, text| {
            each(jsonl_record(path, line, text)?)
        }),
        Format::Json | Format::Parquet => read_json_array(path, text_reader(r, sniffed), each),
    }
}

/// Column names of a CSV file's header row, in order (other formats have no header).
pub fn csv_header(path: &Path, sniffed: &Sniffed) -> Result<Vec<String>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut rdr = csv_reader(text_reader(file, sniffed), sniffed.delimiter);
    header(path, &mut rdr)
}

/// How much of the file [`sniff`] looks at.
const SNIFF_BYTES: usize = 64 * 1024;

fn sniff_bytes(path: &Path, head: &[u8], bytes: u64) -> Result<Sniffed> {
    if head.starts_with(b"PAR1") {
        return Ok(Sniffed {
            format: Format::Parquet,
            delimiter: b',',
            encoding: encoding_rs::UTF_8,
            bom: false,
            converted: false,
            bytes,
        });
    }
    let (encoding, bom) = match Encoding::for_bom(head) {
        Some((enc, _)) => (enc, true),
        None => (detect_encoding(path, head)?, false),
    };
    let converted = !bom && encoding != encoding_rs::UTF_8;
    let (text, _) = encoding.decode_with_bom_removal(head);
    let text = text.trim_start();
    if text.is_empty() {
        return Err(Error::file(path, "the file is empty: nothing to import"));
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let (format, delimiter) = match (text.as_bytes()[0], ext.as_str()) {
        (b'[', _) => (Format::Json, b','),
        (b'{', _) => (Format::Jsonl, b','),
        (_, "json" | "jsonl" | "ndjson") => {
            return Err(Error::file(
                path,
                "expected JSON (an array of objects, or one object per line): the file starts with neither '[' nor '{'",
            ));
        }
        (_, "tsv" | "tab") => (Format::Csv, b'\t'),
        _ => (Format::Csv, sniff_delimiter(text)),
    };
    Ok(Sniffed { format, delimiter, encoding, bom, converted, bytes })
}

/// UTF-8 when the bytes are UTF-8 (a sequence cut at the end of the sample is fine), else the
/// legacy encoding `chardetng` finds most likely. NUL bytes mean binary.
fn detect_encoding(path: &Path, head: &[u8]) -> Result<&'static Encoding> {
    if let Some(at) = memchr_nul(head) {
        return Err(Error::file(
            path,
            format!(
                "this looks like a binary file (a NUL byte at offset {at}), not CSV, TSV, JSON, JSONL or Parquet"
            ),
        ));
    }
    match std::str::from_utf8(head) {
        Ok(_) => return Ok(encoding_rs::UTF_8),
        Err(e) if e.error_len().is_none() && head.len() == SNIFF_BYTES => {
            return Ok(encoding_rs::UTF_8);
        }
        Err(_) if mostly_utf8(head) => return Ok(encoding_rs::UTF_8),
        Err(_) => {}
    }
    let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    det.feed(head, true);
    Ok(det.guess(None, chardetng::Utf8Detection::Deny))
}

/// Whether text with invalid UTF-8 is still UTF-8 with a few damaged bytes: its valid
/// multi-byte characters outnumber its invalid sequences four to one. A legacy single-byte
/// encoding has almost no valid multi-byte sequences (`é` is one byte followed by ASCII), so a
/// French file with one bad byte stays UTF-8, its bad byte a U+FFFD in one row, instead of
/// every accent of every row being decoded as windows-1252.
fn mostly_utf8(bytes: &[u8]) -> bool {
    let (mut valid_wide, mut invalid) = (0usize, 0usize);
    for chunk in bytes.utf8_chunks() {
        valid_wide += chunk.valid().chars().filter(|c| !c.is_ascii()).count();
        if !chunk.invalid().is_empty() {
            invalid += 1;
        }
    }
    valid_wide >= 4 * invalid.max(1)
}

fn memchr_nul(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == 0)
}

/// The delimiter among `,` `\t` `;` `|` that splits the sample's rows into the most consistent
/// number (more than one) of fields, quotes respected.
fn sniff_delimiter(sample: &str) -> u8 {
    let mut best = (b',', 0.0f64, 0usize);
    for d in [b',', b'\t', b';', b'|'] {
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(d)
            .has_headers(false)
            .flexible(true)
            .from_reader(sample.as_bytes());
        let mut lens = Vec::new();
        for rec in rdr.records().take(51) {
            match rec {
                Ok(r) => lens.push(r.len()),
                Err(_) => break,
            }
        }
        // The last record may be cut by the end of the sample.
        if lens.len() > 1 {
            lens.pop();
        }
        let Some(&width) = lens.first() else { continue };
        if width < 2 {
            continue;
        }
        let same = lens.iter().filter(|&&n| n == width).count() as f64 / lens.len() as f64;
        if same > best.1 || (same == best.1 && width > best.2) {
            best = (d, same, width);
        }
    }
    best.0
}

/// The file as UTF-8 text: BOMs removed, other encodings transcoded, invalid bytes replaced by
/// U+FFFD (which the report counts as encoding damage).
fn text_reader<R: Read>(file: R, sniffed: &Sniffed) -> BufReader<impl Read + use<R>> {
    // The decoder reads 8 KiB at a time: from a buffer, not one system call each.
    let dec = encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(Some(sniffed.encoding))
        .bom_override(true)
        .build(BufReader::with_capacity(1 << 18, file));
    BufReader::with_capacity(1 << 16, dec)
}

/// Records end at `\n` only (a `\r` before it is trimmed from the last field): csv's CRLF mode
/// reports the line of each record one too low.
fn csv_reader<R: Read>(r: R, delimiter: u8) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .flexible(true)
        .from_reader(r)
}

fn trim_cr(s: &str) -> &str {
    s.strip_suffix('\r').unwrap_or(s)
}

/// Header names: trimmed, empty ones named `column_N`, repeats suffixed `_2`, `_3`.
fn header<R: Read>(path: &Path, rdr: &mut csv::Reader<R>) -> Result<Vec<String>> {
    let h = rdr.headers().map_err(|e| csv_error(path, e))?;
    let mut out: Vec<String> = Vec::with_capacity(h.len());
    for (i, name) in h.iter().enumerate() {
        let base = match trim_cr(name).trim() {
            "" => format!("column_{}", i + 1),
            n => n.to_string(),
        };
        let mut name = base.clone();
        let mut k = 2;
        while out.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        out.push(name);
    }
    Ok(out)
}

fn read_csv(
    path: &Path,
    r: impl Read,
    delimiter: u8,
    each: &mut dyn FnMut(Record) -> Result<()>,
) -> Result<()> {
    let mut rdr = csv_reader(r, delimiter);
    let names = header(path, &mut rdr)?;
    let mut rec = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => return Err(csv_error(path, e)),
        }
        let line = rec.position().map_or(0, |p| p.line());
        if rec.as_slice().len() > MAX_ROW_BYTES {
            return Err(Error::at(path, Loc::Line(line), too_long()));
        }
        if rec.len() != names.len() {
            let msg = format!("this row has {} fields, the header has {}", rec.len(), names.len());
            return Err(Error::at(path, Loc::Line(line), msg));
        }
        let last = rec.len() - 1;
        let fields = names
            .iter()
            .zip(rec.iter())
            .enumerate()
            .map(|(i, (k, v))| {
                let v = if i == last { trim_cr(v) } else { v };
                (k.clone(), Value::String(v.to_string()))
            })
            .collect();
        each(Record { loc: Loc::Line(line), fields })?;
    }
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    let line = e.position().map(|p| p.line());
    let msg = match e.kind() {
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => e.to_string(),
    };
    match line {
        Some(l) => Error::at(path, Loc::Line(l), msg),
        None => Error::file(path, msg),
    }
}

fn too_long() -> String {
    format!("this row is longer than {} MiB: is this really a dataset row?", MAX_ROW_BYTES >> 20)
}

/// Streams the non-blank lines of a JSON Lines file, with their 1-based numbers, unparsed: the
/// import parses them in parallel ([`jsonl_record`]). UTF-8 is split as it is read (no decoder
/// copying it through two more buffers); [`jsonl_record`] replaces its invalid bytes as the
/// decoder does. Other encodings are decoded first.
pub fn jsonl_lines(
    path: &Path,
    sniffed: &Sniffed,
    each: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    jsonl_lines_from(path, file, sniffed, each)
}

/// [`jsonl_lines`] of the bytes `r` reads (`path` names them in errors); [`read`] parses
/// them one after another.
fn jsonl_lines_from(
    path: &Path,
    r: impl Read,
    sniffed: &Sniffed,
    each: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
    if sniffed.encoding != encoding_rs::UTF_8 {
        return split_jsonl(path, text_reader(r, sniffed), each);
    }
    let mut r = BufReader::with_capacity(1 << 18, r);
    if sniffed.bom {
        let head = r.fill_buf().map_err(|e| Error::io(path, e))?;
        if head.starts_with(b"\xEF\xBB\xBF") {
            r.consume(3);
        }
    }
    split_jsonl(path, r, each)
}

/// The lines of `r`, each handed over from the reader's buffer (copied only when it spans
/// two fills), blank ones skipped; a line longer than [`MAX_ROW_BYTES`] is an error.
fn split_jsonl(
    path: &Path,
    mut r: impl BufRead,
    each: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut emit = |line: u64, text: &[u8]| {
        if text.iter().all(u8::is_ascii_whitespace) { Ok(()) } else { each(line, text) }
    };
    // The start of a line that the buffer ended in.
    let mut carry = Vec::new();
    let mut line = 0u64;
    loop {
        let chunk = r.fill_buf().map_err(|e| Error::io(path, e))?;
        if chunk.is_empty() {
            // The last line, without a newline.
            if !carry.is_empty() {
                emit(line + 1, &carry)?;
            }
            return Ok(());
        }
        let (end, whole) = match memchr::memchr(b'\n', chunk) {
            Some(k) => (k + 1, true),
            None => (chunk.len(), false),
        };
        if carry.len() + end > MAX_ROW_BYTES {
            return Err(Error::at(path, Loc::Line(line + 1), too_long()));
        }
        if !whole {
            carry.extend_from_slice(chunk);
        } else if carry.is_empty() {
            line += 1;
            emit(line, &chunk[..end])?;
        } else {
            line += 1;
            carry.extend_from_slice(&chunk[..end]);
            emit(line, &carry)?;
            carry.clear();
        }
        r.consume(end);
    }
}

/// The record of line `line` of a JSON Lines file, whose text is `text`.
pub fn jsonl_record(path: &Path, line: u64, text: &[u8]) -> Result<Record> {
    // Bytes that are not UTF-8 become U+FFFD, as the decoder makes them in other files (the
    // report counts them as damage).
    // Checked once: `from_str` does not check its strings' bytes again (`from_slice` does).
    // `from_utf8` first: it checks ASCII a word at a time, the lossy decoder a byte at a time.
    let text = match std::str::from_utf8(text) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(text),
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| json_error(path, Some(line), &e))?;
    let Value::Object(fields) = value else {
        return Err(Error::at(
            path,
            Loc::Line(line),
            format!("expected a JSON object, found {}", kind(&value)),
        ));
    };
    Ok(Record { loc: Loc::Line(line), fields })
}

/// `serde_json`'s message without its own " at line L column C", which we state our way.
fn json_error(path: &Path, line: Option<u64>, e: &serde_json::Error) -> Error {
    let text = e.to_string();
    let msg = text.split(" at line ").next().unwrap_or(&text);
    let line = line.unwrap_or(e.line() as u64);
    if e.is_eof() {
        return Error::at(path, Loc::Line(line), format!("{msg} (the JSON ends too early)"));
    }
    Error::at(path, Loc::Line(line), format!("{msg} at column {}", e.column()))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON array streamed element by element: the array itself is never held in memory.
fn read_json_array(
    path: &Path,
    r: impl Read,
    each: &mut dyn FnMut(Record) -> Result<()>,
) -> Result<()> {
    struct Elements<'a> {
        path: &'a Path,
        each: &'a mut dyn FnMut(Record) -> Result<()>,
        failed: &'a mut Option<Error>,
    }
    impl<'de> Visitor<'de> for Elements<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
            let mut item = 0u64;
            while let Some(value) = seq.next_element::<Value>()? {
                item += 1;
                let result = match value {
                    Value::Object(fields) => (self.each)(Record { loc: Loc::Item(item), fields }),
                    other => Err(Error::at(
                        self.path,
                        Loc::Item(item),
                        format!("expected a JSON object, found {}", kind(&other)),
                    )),
                };
                if let Err(e) = result {
                    *self.failed = Some(e);
                    return Err(serde::de::Error::custom("stopped"));
                }
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for Elements<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(
            self,
            d: D,
        ) -> std::result::Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    let mut failed = None;
    let mut de = serde_json::Deserializer::from_reader(r);
    let res = Elements { path, each, failed: &mut failed }.deserialize(&mut de);
    if let Some(e) = failed {
        return Err(e);
    }
    res.and_then(|()| de.end()).map_err(|e| json_error(path, None, &e))
}

/// Reads a Parquet file. The `parquet` crate panics on some malformed files (found by our fuzz
/// target): such a panic becomes this file's error instead of reaching the user.
fn read_parquet<R: parquet::file::reader::ChunkReader + 'static>(
    path: &Path,
    file: R,
    each: &mut dyn FnMut(Record) -> Result<()>,
) -> Result<()> {
    let run = std::panic::AssertUnwindSafe(|| parquet_rows(path, file, each));
    match std::panic::catch_unwind(run) {
        Ok(result) => result,
        Err(payload) => {
            let why = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Error::file(
                path,
                format!("not a readable Parquet file (the reader failed: {why})"),
            ))
        }
    }
}

fn parquet_rows<R: parquet::file::reader::ChunkReader + 'static>(
    path: &Path,
    file: R,
    each: &mut dyn FnMut(Record) -> Result<()>,
) -> Result<()> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let bad = |e: parquet::errors::ParquetError| Error::file(path, parquet_error(e));
    let reader = SerializedFileReader::new(file).map_err(bad)?;
    let rows = reader.get_row_iter(None).map_err(bad)?;
    for (i, row) in rows.enumerate() {
        let loc = Loc::Row(i as u64 + 1);
        let row = row.map_err(|e| Error::at(path, loc, parquet_error(e)))?;
        match row.to_json_value() {
            Value::Object(fields) => each(Record { loc, fields })?,
            other => {
                return Err(Error::at(
                    path,
                    loc,
                    format!("expected a row, found {}", kind(&other)),
                ));
            }
        }
    }
    Ok(())
}

fn parquet_error(e: parquet::errors::ParquetError) -> String {
    let text = e.to_string();
    format!("not a readable Parquet file ({})", text.trim_start_matches("Parquet error: "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_delim(sample: &str, expected: u8) {
        assert_eq!(sniff_delimiter(sample) as char, expected as char, "{sample:?}");
    }

    #[test]
    fn delimiters() {
        check_delim("a,b,c\n1,2,3\n4,5,6\n", b',');
        check_delim("a;b;c\n1;\"2;x\";3\n4,5;5;6\n", b';');
        check_delim("a\tb\n\"x, y\"\tz\nq\tr\n", b'\t');
        check_delim("question|answer\nwhy?|because\n", b'|');
    }
}
