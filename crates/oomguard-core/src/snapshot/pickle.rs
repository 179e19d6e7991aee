//! A pickle reader for plain data only: dicts, lists, tuples, sets, strings,
//! bytes, integers, floats, booleans and None, with the memo that shares them.
//! It never imports, looks up or calls anything: every opcode that would
//! (GLOBAL, STACK_GLOBAL, REDUCE, BUILD, INST, OBJ, NEWOBJ, NEWOBJ_EX, EXT1/2/4,
//! PERSID, BINPERSID, out-of-band buffers) ends the read with an error that
//! names the opcode and its byte offset.
//!
//! Opcodes and their argument layouts follow CPython's `Lib/pickletools.py`
//! and `Lib/pickle.py` (protocols 0 to 5). Values live in an arena
//! ([`Heap`]) and are referred to by index, so sharing through the memo costs
//! nothing and dropping a deep structure never recurses.
//!
//! Bounded memory: the input is read through a fixed buffer, never whole;
//! declared lengths are checked against caps and never used to pre-allocate;
//! nesting deeper than [`MAX_DEPTH`] is refused. A [`Finisher`] sees every
//! container when it is stored into another one (complete, in every pickle a
//! pickler writes) and may replace it with a compact record of its own, so a
//! reader can drop what it does not need while the file streams by. Bytes
//! objects keep only their length: no snapshot field is bytes.

use std::collections::HashMap;
use std::io::{self, Read};

/// Deepest nesting of containers accepted. A memory snapshot nests 7 levels
/// (root, segments, segment, blocks, block, frames, frame).
pub const MAX_DEPTH: u8 = 64;
/// Longest string accepted. Snapshot strings are file names and function
/// names; a C++ symbol rarely exceeds a few kilobytes.
pub const MAX_STRING_BYTES: u64 = 64 << 20;
/// Longest text argument (protocol 0 numbers, memo keys).
const MAX_LINE_BYTES: usize = 4096;
/// Longest LONG4 integer read (its bytes are skipped: it cannot be a size).
const MAX_LONG_BYTES: u64 = 1 << 20;
/// Most values on the stack at once. Python's pickler batches 1000 items per
/// APPENDS/SETITEMS; TorchScript's pickler writes a whole list at once, so
/// this leaves room for a few tens of millions of trace entries.
const MAX_STACK: usize = 1 << 27;
/// Highest pickle protocol known (CPython 3.8+: 5).
const HIGHEST_PROTOCOL: u8 = 5;
const READ_BUFFER: usize = 1 << 16;

/// One value: scalars inline, strings and containers by index into the heap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer beyond 64 bits (its digits are not kept).
    BigInt,
    Float(f64),
    Str(u32),
    /// A bytes or bytearray object of this many bytes (content not kept).
    Bytes(u64),
    Obj(u32),
}

/// A container in the heap, or what a [`Finisher`] made of it. Boxed, so a
/// finished record takes 16 bytes, not the 32 of an inline vector.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::box_collection)] // the box is the point: see above
pub enum Obj {
    List(Box<Vec<Value>>),
    Tuple(Box<Vec<Value>>),
    Dict(Box<Vec<(Value, Value)>>),
    Set(Box<Vec<Value>>),
    /// Replaced by a finisher: its record `index` of its kind `kind`.
    Done {
        kind: u8,
        index: u32,
    },
}

/// Everything decoded: strings and containers, referred to by index.
#[derive(Debug, Default)]
pub struct Heap {
    pub strings: Vec<Box<str>>,
    pub objs: Vec<Obj>,
    /// Per container: nesting depth (low 7 bits), finished (high bit).
    meta: Vec<u8>,
}

const FINISHED: u8 = 0x80;

impl Heap {
    pub fn str(&self, v: Value) -> Option<&str> {
        match v {
            Value::Str(i) => self.strings.get(i as usize).map(|s| &**s),
            _ => None,
        }
    }

    pub fn obj(&self, v: Value) -> Option<&Obj> {
        match v {
            Value::Obj(i) => self.objs.get(i as usize),
            _ => None,
        }
    }

    /// The value under string key `key` of a dict.
    pub fn get(&self, dict: Value, key: &str) -> Option<Value> {
        match self.obj(dict)? {
            Obj::Dict(items) => items
                .iter()
                .find(|(k, _)| self.str(*k) == Some(key))
                .map(|(_, v)| *v),
            _ => None,
        }
    }

    /// The items of a list or tuple.
    pub fn items(&self, v: Value) -> Option<&[Value]> {
        match self.obj(v)? {
            Obj::List(items) | Obj::Tuple(items) => Some(items.as_slice()),
            _ => None,
        }
    }

    fn depth(&self, v: Value) -> u8 {
        match v {
            Value::Obj(i) => self.meta[i as usize] & !FINISHED,
            _ => 0,
        }
    }

    fn new_obj(&mut self, obj: Obj) -> std::result::Result<Value, String> {
        let id = u32::try_from(self.objs.len()).map_err(|_| "more than 4 billion containers")?;
        self.objs.push(obj);
        self.meta.push(1);
        Ok(Value::Obj(id))
    }
}

/// Sees each container once, when it is complete, and may replace it (set
/// `heap.objs[id]` to [`Obj::Done`]) with a record of its own. An error
/// ends the read at that byte.
pub trait Finisher {
    fn finish(&mut self, heap: &mut Heap, id: u32) -> std::result::Result<(), String>;
}

/// A finisher that keeps everything as it is.
#[cfg(test)]
pub struct KeepAll;

#[cfg(test)]
impl Finisher for KeepAll {
    fn finish(&mut self, _heap: &mut Heap, _id: u32) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// Why a pickle was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickleErrorKind {
    /// The pickle asks to import, look up or call something.
    Refused,
    /// The input ends before the pickle does.
    Truncated,
    /// Not a well-formed pickle (unknown opcode, stack misuse, bad text).
    Malformed,
    /// Well-formed, but beyond a cap (length, depth, stack).
    Limit,
    /// The input could not be read (including a corrupt gzip stream).
    Io,
}

/// A pickle that could not be read, with the byte offset of the opcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError {
    pub kind: PickleErrorKind,
    pub offset: u64,
    pub detail: String,
}

/// Errors are boxed so that the hot paths return small values in registers.
type Result<T> = std::result::Result<T, Box<PickleError>>;

/// The input, read through a fixed buffer, counting bytes.
struct Input<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    before: u64,
}

impl<R: Read> Input<R> {
    fn new(inner: R) -> Self {
        Input {
            inner,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            pos: 0,
            len: 0,
            before: 0,
        }
    }

    fn offset(&self) -> u64 {
        self.before + self.pos as u64
    }

    #[cold]
    fn err(&self, kind: PickleErrorKind, detail: impl Into<String>) -> Box<PickleError> {
        Box::new(PickleError {
            kind,
            offset: self.offset(),
            detail: detail.into(),
        })
    }

    /// Refills the buffer; false at the end of the input.
    fn fill(&mut self) -> Result<bool> {
        self.before += self.len as u64;
        self.pos = 0;
        self.len = 0;
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(n) => {
                    self.len = n;
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.err(PickleErrorKind::Io, e.to_string())),
            }
        }
    }

    #[cold]
    fn truncated(&self, what: &str) -> Box<PickleError> {
        self.err(
            PickleErrorKind::Truncated,
            format!(
                "the file ends at byte {} while reading {what}",
                self.offset()
            ),
        )
    }

    #[inline]
    fn byte(&mut self, what: &str) -> Result<u8> {
        if self.pos < self.len {
            let b = self.buf[self.pos];
            self.pos += 1;
            return Ok(b);
        }
        self.byte_slow(what)
    }

    #[cold]
    fn byte_slow(&mut self, what: &str) -> Result<u8> {
        if !self.fill()? {
            return Err(self.truncated(what));
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(b)
    }

    /// Reads up to 8 bytes into an array.
    #[inline]
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        if self.pos + N <= self.len {
            out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
            self.pos += N;
            return Ok(out);
        }
        for b in out.iter_mut() {
            *b = self.byte(what)?;
        }
        Ok(out)
    }

    /// Calls `sink` with the next `n` bytes in pieces, as they arrive.
    fn stream(&mut self, mut n: u64, what: &str, mut sink: impl FnMut(&[u8])) -> Result<()> {
        while n > 0 {
            if self.pos == self.len && !self.fill()? {
                return Err(self.truncated(what));
            }
            let take = ((self.len - self.pos) as u64).min(n) as usize;
            sink(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
            n -= take as u64;
        }
        Ok(())
    }

    /// The next `n` bytes; the vector grows as data arrives, so a false
    /// length costs what the file really holds, not what it claims.
    fn vec(&mut self, n: u64, what: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.stream(n, what, |piece| out.extend_from_slice(piece))?;
        Ok(out)
    }

    /// A newline-terminated text argument, without the newline.
    fn line(&mut self, what: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let b = self.byte(what)?;
            if b == b'\n' {
                return Ok(out);
            }
            if out.len() >= MAX_LINE_BYTES {
                return Err(self.err(
                    PickleErrorKind::Limit,
                    format!("{what} is longer than {MAX_LINE_BYTES} bytes"),
                ));
            }
            out.push(b);
        }
    }
}

/// Reads one pickle from `input` and returns its root value with the heap.
pub fn read_pickle<R: Read>(
    input: R,
    finisher: &mut dyn Finisher,
) -> std::result::Result<(Heap, Value), PickleError> {
    let mut vm = Machine {
        input: Input::new(input),
        heap: Heap::default(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Vec::new(),
        sparse_memo: HashMap::new(),
        memo_count: 0,
        finisher,
        op_at: 0,
    };
    let root = vm.run().map_err(|e| *e)?;
    Ok((vm.heap, root))
}

struct Machine<'f, R> {
    input: Input<R>,
    heap: Heap,
    stack: Vec<Value>,
    marks: Vec<usize>,
    /// Memo slots assigned in order (MEMOIZE, and PUT n with n = length).
    memo: Vec<Option<Value>>,
    /// Memo slots far beyond the length (hostile or unusual PUT indexes).
    sparse_memo: HashMap<u64, Value>,
    /// Distinct memo keys stored: MEMOIZE's next index (CPython: len(memo)).
    memo_count: u64,
    finisher: &'f mut dyn Finisher,
    op_at: u64,
}

/// Opcodes that would import, look up or call something, with their names.
fn refused_opcode(op: u8) -> Option<&'static str> {
    Some(match op {
        b'c' => "GLOBAL",
        0x93 => "STACK_GLOBAL",
        b'R' => "REDUCE",
        b'b' => "BUILD",
        b'i' => "INST",
        b'o' => "OBJ",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return None,
    })
}

impl<R: Read> Machine<'_, R> {
    #[cold]
    fn err(&self, kind: PickleErrorKind, detail: impl Into<String>) -> Box<PickleError> {
        Box::new(PickleError {
            kind,
            offset: self.op_at,
            detail: detail.into(),
        })
    }

    #[cold]
    fn malformed(&self, detail: impl Into<String>) -> Box<PickleError> {
        self.err(PickleErrorKind::Malformed, detail)
    }

    fn push(&mut self, v: Value) -> Result<()> {
        if self.stack.len() >= MAX_STACK {
            return Err(self.err(
                PickleErrorKind::Limit,
                format!("more than {MAX_STACK} values on the pickle stack"),
            ));
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self, op: &str) -> Result<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.malformed(format!("{op} with an empty stack")));
        }
        Ok(self.stack.pop().expect("checked above"))
    }

    fn top(&self, op: &str) -> Result<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.malformed(format!("{op} with an empty stack")));
        }
        Ok(*self.stack.last().expect("checked above"))
    }

    /// The values pushed since the last MARK, which is removed.
    fn pop_mark(&mut self, op: &str) -> Result<Vec<Value>> {
        let Some(at) = self.marks.pop() else {
            return Err(self.malformed(format!("{op} without a MARK")));
        };
        Ok(self.stack.split_off(at))
    }

    fn new_str(&mut self, bytes: Vec<u8>) -> Result<Value> {
        let text = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        let id = u32::try_from(self.heap.strings.len())
            .map_err(|_| self.err(PickleErrorKind::Limit, "more than 4 billion strings"))?;
        self.heap.strings.push(text.into_boxed_str());
        Ok(Value::Str(id))
    }

    fn new_obj(&mut self, obj: Obj) -> Result<Value> {
        self.heap
            .new_obj(obj)
            .map_err(|e| self.err(PickleErrorKind::Limit, e))
    }

    /// A value about to be stored in `parent`: finish it when it is a
    /// container seen for the first time, and raise the parent's depth.
    fn adopt(&mut self, parent: u32, child: Value) -> Result<()> {
        if let Value::Obj(id) = child {
            self.finish(id)?;
        }
        let depth = self.heap.depth(child).saturating_add(1);
        let meta = &mut self.heap.meta[parent as usize];
        if depth > *meta & !FINISHED {
            if depth > MAX_DEPTH {
                return Err(self.err(
                    PickleErrorKind::Limit,
                    format!("containers nested deeper than {MAX_DEPTH} levels"),
                ));
            }
            *meta = (*meta & FINISHED) | depth;
        }
        Ok(())
    }

    fn finish(&mut self, id: u32) -> Result<()> {
        let meta = self.heap.meta[id as usize];
        if meta & FINISHED != 0 {
            return Ok(());
        }
        self.heap.meta[id as usize] = meta | FINISHED;
        self.finisher.finish(&mut self.heap, id).map_err(|detail| {
            Box::new(PickleError {
                kind: PickleErrorKind::Malformed,
                offset: self.op_at,
                detail,
            })
        })
    }

    /// A container built from `items` in one step (LIST, TUPLE, DICT, ...).
    fn build(&mut self, items: Vec<Value>, make: impl FnOnce(Vec<Value>) -> Obj) -> Result<()> {
        let v = self.new_obj(Obj::List(Box::default()))?;
        let Value::Obj(id) = v else { unreachable!() };
        for &item in &items {
            self.adopt(id, item)?;
        }
        self.heap.objs[id as usize] = make(items);
        self.push(v)
    }

    /// The container under the new items, for APPEND(S), SETITEM(S), ADDITEMS.
    fn target(&self, v: Value, op: &str) -> Result<u32> {
        match v {
            Value::Obj(id) => Ok(id),
            _ => Err(self.malformed(format!("{op} on a value that is not a container"))),
        }
    }

    fn extend(&mut self, target: Value, items: Vec<Value>, op: &str) -> Result<()> {
        let id = self.target(target, op)?;
        for &item in &items {
            self.adopt(id, item)?;
        }
        match &mut self.heap.objs[id as usize] {
            Obj::List(list) | Obj::Set(list) => {
                list.extend(items);
                Ok(())
            }
            Obj::Done { .. } => {
                Err(self.malformed(format!("{op} on a container already complete")))
            }
            _ => Err(self.malformed(format!("{op} on a value that is not a list or set"))),
        }
    }

    fn set_items(&mut self, target: Value, items: Vec<Value>, op: &str) -> Result<()> {
        if items.len() % 2 != 0 {
            return Err(self.malformed(format!("{op} with an odd number of keys and values")));
        }
        let id = self.target(target, op)?;
        for &item in &items {
            self.adopt(id, item)?;
        }
        match &mut self.heap.objs[id as usize] {
            Obj::Dict(dict) => {
                for pair in items.chunks_exact(2) {
                    dict.push((pair[0], pair[1]));
                }
                Ok(())
            }
            Obj::Done { .. } => {
                Err(self.malformed(format!("{op} on a container already complete")))
            }
            _ => Err(self.malformed(format!("{op} on a value that is not a dict"))),
        }
    }

    fn memo_put(&mut self, index: u64, v: Value) {
        let len = self.memo.len() as u64;
        let new = if index < len {
            self.memo[index as usize].replace(v).is_none()
        } else if index == len {
            self.memo.push(Some(v));
            true
        } else {
            self.sparse_memo.insert(index, v).is_none()
        };
        if new {
            self.memo_count += 1;
        }
    }

    #[inline]
    fn memo_get(&self, index: u64) -> Result<Value> {
        let found = if index < self.memo.len() as u64 {
            self.memo[index as usize]
        } else {
            self.sparse_memo.get(&index).copied()
        };
        found.ok_or_else(|| self.malformed(format!("memo key {index} was never stored")))
    }

    fn length(&mut self, declared: u64, what: &str) -> Result<u64> {
        if declared > MAX_STRING_BYTES {
            return Err(self.err(
                PickleErrorKind::Limit,
                format!(
                    "declares a {what} of {declared} bytes (at most {MAX_STRING_BYTES} are accepted)"
                ),
            ));
        }
        Ok(declared)
    }

    fn text_number(&mut self, what: &str) -> Result<String> {
        let line = self.input.line(what)?;
        String::from_utf8(line).map_err(|_| self.malformed(format!("{what} is not text")))
    }

    fn run(&mut self) -> Result<Value> {
        loop {
            self.op_at = self.input.offset();
            let op = self.input.byte("the next opcode")?;
            if let Some(name) = refused_opcode(op) {
                return Err(self.refuse(op, name));
            }
            match op {
                0x80 => {
                    let proto = self.input.byte("the protocol number")?;
                    if proto > HIGHEST_PROTOCOL {
                        return Err(self.malformed(format!(
                            "pickle protocol {proto} is newer than the highest known ({HIGHEST_PROTOCOL})"
                        )));
                    }
                }
                // FRAME: a length hint for buffered readers; the opcodes
                // inside are read as they come.
                0x95 => {
                    self.input.array::<8>("a frame length")?;
                }
                b'.' => {
                    let root = self.pop("STOP")?;
                    if let Value::Obj(id) = root {
                        self.finish(id)?;
                    }
                    return Ok(root);
                }
                b'(' => {
                    if self.marks.len() >= MAX_DEPTH as usize * 2 {
                        return Err(self.err(
                            PickleErrorKind::Limit,
                            format!("more than {} open MARKs", MAX_DEPTH as usize * 2),
                        ));
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    // As CPython: POP on an empty stack frame drops the MARK.
                    let floor = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() == floor && !self.marks.is_empty() {
                        self.pop_mark("POP")?;
                    } else {
                        self.pop("POP")?;
                    }
                }
                b'1' => {
                    self.pop_mark("POP_MARK")?;
                }
                b'2' => {
                    let v = self.top("DUP")?;
                    self.push(v)?;
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'J' => {
                    let b = self.input.array::<4>("a BININT")?;
                    self.push(Value::Int(i32::from_le_bytes(b) as i64))?;
                }
                b'K' => {
                    let b = self.input.byte("a BININT1")?;
                    self.push(Value::Int(b as i64))?;
                }
                b'M' => {
                    let b = self.input.array::<2>("a BININT2")?;
                    self.push(Value::Int(u16::from_le_bytes(b) as i64))?;
                }
                0x8a => {
                    let n = self.input.byte("a LONG1 length")? as u64;
                    let bytes = self.input.vec(n, "a LONG1")?;
                    self.push(decode_long(&bytes))?;
                }
                0x8b => {
                    let b = self.input.array::<4>("a LONG4 length")?;
                    let n = i32::from_le_bytes(b);
                    if n < 0 {
                        return Err(self.malformed("LONG4 with a negative length"));
                    }
                    let n = n as u64;
                    if n > MAX_LONG_BYTES {
                        return Err(self.err(
                            PickleErrorKind::Limit,
                            format!("declares an integer of {n} bytes (at most {MAX_LONG_BYTES} are accepted)"),
                        ));
                    }
                    let bytes = self.input.vec(n, "a LONG4")?;
                    self.push(decode_long(&bytes))?;
                }
                b'I' => {
                    let text = self.text_number("an INT")?;
                    let v = match text.as_str() {
                        "01" => Value::Bool(true),
                        "00" => Value::Bool(false),
                        t => parse_int_text(t).ok_or_else(|| {
                            self.malformed(format!("INT argument {t:?} is not a number"))
                        })?,
                    };
                    self.push(v)?;
                }
                b'L' => {
                    let text = self.text_number("a LONG")?;
                    let t = text.strip_suffix('L').unwrap_or(&text);
                    let v = parse_int_text(t).ok_or_else(|| {
                        self.malformed(format!("LONG argument {t:?} is not a number"))
                    })?;
                    self.push(v)?;
                }
                b'F' => {
                    let text = self.text_number("a FLOAT")?;
                    let f: f64 = text.trim().parse().map_err(|_| {
                        self.malformed(format!("FLOAT argument {text:?} is not a number"))
                    })?;
                    self.push(Value::Float(f))?;
                }
                b'G' => {
                    let b = self.input.array::<8>("a BINFLOAT")?;
                    self.push(Value::Float(f64::from_be_bytes(b)))?;
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.input.array::<4>("a BINUNICODE length")?);
                    self.string(n as u64, "a BINUNICODE string")?;
                }
                0x8c => {
                    let n = self.input.byte("a SHORT_BINUNICODE length")?;
                    self.string(n as u64, "a SHORT_BINUNICODE string")?;
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.input.array::<8>("a BINUNICODE8 length")?);
                    self.string(n, "a BINUNICODE8 string")?;
                }
                b'T' => {
                    let n = i32::from_le_bytes(self.input.array::<4>("a BINSTRING length")?);
                    if n < 0 {
                        return Err(self.malformed("BINSTRING with a negative length"));
                    }
                    self.string(n as u64, "a BINSTRING string")?;
                }
                b'U' => {
                    let n = self.input.byte("a SHORT_BINSTRING length")?;
                    self.string(n as u64, "a SHORT_BINSTRING string")?;
                }
                b'S' => {
                    let line = self.input.line("a STRING")?;
                    let text = unquote_string(&line)
                        .ok_or_else(|| self.malformed("STRING argument is not a quoted string"))?;
                    let v = self.new_str(text)?;
                    self.push(v)?;
                }
                b'V' => {
                    let line = self.input.line("a UNICODE")?;
                    let v = self.new_str(raw_unicode_unescape(&line).into_bytes())?;
                    self.push(v)?;
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.input.array::<4>("a BINBYTES length")?);
                    self.bytes(n as u64, "a BINBYTES object")?;
                }
                b'C' => {
                    let n = self.input.byte("a SHORT_BINBYTES length")?;
                    self.bytes(n as u64, "a SHORT_BINBYTES object")?;
                }
                0x8e => {
                    let n = u64::from_le_bytes(self.input.array::<8>("a BINBYTES8 length")?);
                    self.bytes(n, "a BINBYTES8 object")?;
                }
                0x96 => {
                    let n = u64::from_le_bytes(self.input.array::<8>("a BYTEARRAY8 length")?);
                    self.bytes(n, "a BYTEARRAY8 object")?;
                }
                b']' => {
                    let v = self.new_obj(Obj::List(Box::default()))?;
                    self.push(v)?;
                }
                b'}' => {
                    let v = self.new_obj(Obj::Dict(Box::default()))?;
                    self.push(v)?;
                }
                b')' => {
                    let v = self.new_obj(Obj::Tuple(Box::default()))?;
                    self.push(v)?;
                }
                0x8f => {
                    let v = self.new_obj(Obj::Set(Box::default()))?;
                    self.push(v)?;
                }
                b'l' => {
                    let items = self.pop_mark("LIST")?;
                    self.build(items, |v| Obj::List(Box::new(v)))?;
                }
                b't' => {
                    let items = self.pop_mark("TUPLE")?;
                    self.build(items, |v| Obj::Tuple(Box::new(v)))?;
                }
                0x91 => {
                    let items = self.pop_mark("FROZENSET")?;
                    self.build(items, |v| Obj::Set(Box::new(v)))?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = vec![Value::None; n];
                    for slot in items.iter_mut().rev() {
                        *slot = self.pop("TUPLE1/2/3")?;
                    }
                    self.build(items, |v| Obj::Tuple(Box::new(v)))?;
                }
                b'd' => {
                    let items = self.pop_mark("DICT")?;
                    if items.len() % 2 != 0 {
                        return Err(self.malformed("DICT with an odd number of keys and values"));
                    }
                    self.build(items, |items| {
                        Obj::Dict(Box::new(
                            items.chunks_exact(2).map(|p| (p[0], p[1])).collect(),
                        ))
                    })?;
                }
                b'a' => {
                    let item = self.pop("APPEND")?;
                    let list = self.top("APPEND")?;
                    self.extend(list, vec![item], "APPEND")?;
                }
                b'e' => {
                    let items = self.pop_mark("APPENDS")?;
                    let list = self.top("APPENDS")?;
                    self.extend(list, items, "APPENDS")?;
                }
                0x90 => {
                    let items = self.pop_mark("ADDITEMS")?;
                    let set = self.top("ADDITEMS")?;
                    self.extend(set, items, "ADDITEMS")?;
                }
                b's' => {
                    let value = self.pop("SETITEM")?;
                    let key = self.pop("SETITEM")?;
                    let dict = self.top("SETITEM")?;
                    self.set_items(dict, vec![key, value], "SETITEM")?;
                }
                b'u' => {
                    let items = self.pop_mark("SETITEMS")?;
                    let dict = self.top("SETITEMS")?;
                    self.set_items(dict, items, "SETITEMS")?;
                }
                0x94 => {
                    let v = self.top("MEMOIZE")?;
                    self.memo_put(self.memo_count, v);
                }
                b'q' => {
                    let index = self.input.byte("a BINPUT index")? as u64;
                    let v = self.top("BINPUT")?;
                    self.memo_put(index, v);
                }
                b'r' => {
                    let index = u32::from_le_bytes(self.input.array::<4>("a LONG_BINPUT index")?);
                    let v = self.top("LONG_BINPUT")?;
                    self.memo_put(index as u64, v);
                }
                b'p' => {
                    let text = self.text_number("a PUT index")?;
                    let index: u64 = text.parse().map_err(|_| {
                        self.malformed(format!("PUT index {text:?} is not a number"))
                    })?;
                    let v = self.top("PUT")?;
                    self.memo_put(index, v);
                }
                b'h' => {
                    let index = self.input.byte("a BINGET index")? as u64;
                    let v = self.memo_get(index)?;
                    self.push(v)?;
                }
                b'j' => {
                    let index = u32::from_le_bytes(self.input.array::<4>("a LONG_BINGET index")?);
                    let v = self.memo_get(index as u64)?;
                    self.push(v)?;
                }
                b'g' => {
                    let text = self.text_number("a GET index")?;
                    let index: u64 = text.parse().map_err(|_| {
                        self.malformed(format!("GET index {text:?} is not a number"))
                    })?;
                    let v = self.memo_get(index)?;
                    self.push(v)?;
                }
                other => {
                    return Err(self.malformed(format!("unknown opcode 0x{other:02x}")));
                }
            }
        }
    }

    fn string(&mut self, declared: u64, what: &str) -> Result<()> {
        let n = self.length(declared, what)?;
        let bytes = self.input.vec(n, what)?;
        let v = self.new_str(bytes)?;
        self.push(v)
    }

    fn bytes(&mut self, declared: u64, what: &str) -> Result<()> {
        let n = self.length(declared, what)?;
        self.input.stream(n, what, |_| {})?;
        self.push(Value::Bytes(n))
    }

    /// The error for an opcode that would import or call something, naming
    /// the global it asks for when the pickle says.
    fn refuse(&mut self, op: u8, name: &str) -> Box<PickleError> {
        let asked = match op {
            b'c' | b'i' => {
                let module = self.input.line("a module name").ok();
                let attr = self.input.line("a global name").ok();
                match (module, attr) {
                    (Some(m), Some(a)) => Some(format!(
                        "{}.{}",
                        String::from_utf8_lossy(&m),
                        String::from_utf8_lossy(&a)
                    )),
                    _ => None,
                }
            }
            0x93 if self.stack.len() >= 2 => {
                let n = self.stack.len();
                match (
                    self.heap.str(self.stack[n - 2]),
                    self.heap.str(self.stack[n - 1]),
                ) {
                    (Some(m), Some(a)) => Some(format!("{m}.{a}")),
                    _ => None,
                }
            }
            _ => None,
        };
        let what = match (op, asked) {
            (_, Some(global)) => format!("asks for the global {global:?} ({name})"),
            (b'R' | 0x81 | 0x92 | b'o', None) => format!("asks to call an object ({name})"),
            (b'b', None) => format!("asks to set an object's state ({name})"),
            (0x97 | 0x98, None) => format!("refers to an out-of-band buffer ({name})"),
            _ => format!("asks for an object from outside the file ({name})"),
        };
        self.err(
            PickleErrorKind::Refused,
            format!("{what}: refused, only plain data (dicts, lists, strings, numbers) is read, nothing is imported or run"),
        )
    }
}

/// A two's-complement little-endian integer (LONG1/LONG4); beyond 64 bits
/// it is only known to be big.
fn decode_long(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let fill = if negative { 0xff } else { 0 };
    // Strip redundant sign bytes, then fit what is left in 8 bytes.
    let mut len = bytes.len();
    while len > 1 && bytes[len - 1] == fill && (bytes[len - 2] & 0x80 != 0) == negative {
        len -= 1;
    }
    if len > 8 {
        return Value::BigInt;
    }
    let mut buf = [fill; 8];
    buf[..len].copy_from_slice(&bytes[..len]);
    Value::Int(i64::from_le_bytes(buf))
}

fn parse_int_text(t: &str) -> Option<Value> {
    let t = t.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(v) = t.parse::<i64>() {
        return Some(Value::Int(v));
    }
    let digits = t.strip_prefix('-').unwrap_or(t);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(Value::BigInt)
}

/// The argument of protocol 0's STRING: a Python repr in quotes, with the
/// common backslash escapes.
fn unquote_string(line: &[u8]) -> Option<Vec<u8>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() < 2 {
        return None;
    }
    let q = line[0];
    if (q != b'\'' && q != b'"') || line[line.len() - 1] != q {
        return None;
    }
    let body = &line[1..line.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if b != b'\\' || i + 1 == body.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let e = body[i + 1];
        i += 2;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'\\' | b'\'' | b'"' => out.push(e),
            b'x' if i + 2 <= body.len() => {
                let hex = std::str::from_utf8(&body[i..i + 2]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            _ => {
                out.push(b'\\');
                out.push(e);
            }
        }
    }
    Some(out)
}

/// The argument of protocol 0's UNICODE: latin-1 bytes with `\uXXXX` and
/// `\UXXXXXXXX` escapes (Python's raw-unicode-escape codec).
fn raw_unicode_unescape(line: &[u8]) -> String {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if b == b'\\' && i + 1 < line.len() && (line[i + 1] == b'u' || line[i + 1] == b'U') {
            let width = if line[i + 1] == b'u' { 4 } else { 8 };
            let digits = line.get(i + 2..i + 2 + width);
            let c = digits
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| u32::from_str_radix(d, 16).ok())
                .and_then(char::from_u32);
            if let Some(c) = c {
                out.push(c);
                i += 2 + width;
                continue;
            }
        }
        out.push(b as char);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> std::result::Result<(Heap, Value), PickleError> {
        read_pickle(bytes, &mut KeepAll)
    }

    #[test]
    fn protocol_two_dict_of_list() {
        // pickle.dumps({'a': [1, -2, 300]}, protocol=2)
        let bytes = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01]q\x02(K\x01J\xfe\xff\xff\xffM,\x01es.";
        let (heap, root) = read(bytes).unwrap();
        let list = heap.get(root, "a").unwrap();
        assert_eq!(
            heap.items(list).unwrap(),
            &[Value::Int(1), Value::Int(-2), Value::Int(300)]
        );
    }

    #[test]
    fn longs_decode_twos_complement() {
        assert_eq!(decode_long(b""), Value::Int(0));
        assert_eq!(decode_long(b"\xff\x00"), Value::Int(255));
        assert_eq!(decode_long(b"\x00\xff"), Value::Int(-256));
        assert_eq!(decode_long(b"\x80"), Value::Int(-128));
        assert_eq!(
            decode_long(&0x7f12_3456_789a_u64.to_le_bytes()[..6]),
            Value::Int(0x7f12_3456_789a)
        );
        assert_eq!(decode_long(&[0xff; 9]), Value::Int(-1));
        assert_eq!(decode_long(&[1; 10]), Value::BigInt);
    }

    #[test]
    fn global_is_refused_with_its_name_and_offset() {
        let e = read(b"\x80\x02cposix\nsystem\nq\x00.").unwrap_err();
        assert_eq!(e.kind, PickleErrorKind::Refused);
        assert_eq!(e.offset, 2);
        assert!(e.detail.contains("posix.system"), "{}", e.detail);
    }

    #[test]
    fn stack_global_is_refused_with_its_name() {
        let e = read(b"\x80\x04\x8c\x02os\x8c\x06system\x93.").unwrap_err();
        assert_eq!(e.kind, PickleErrorKind::Refused);
        assert_eq!(e.offset, 14);
        assert!(e.detail.contains("os.system"), "{}", e.detail);
    }

    #[test]
    fn every_refused_opcode_is_refused() {
        for op in [
            b'R', b'b', b'o', 0x81, 0x92, 0x82, 0x83, 0x84, b'P', b'Q', 0x97, 0x98,
        ] {
            let bytes = [0x80, 2, b'N', b'N', op, b'.'];
            let e = read(&bytes).unwrap_err();
            assert_eq!(e.kind, PickleErrorKind::Refused, "opcode {op:#x}");
            assert_eq!(e.offset, 4, "opcode {op:#x}");
        }
    }

    #[test]
    fn huge_declared_length_is_refused_without_allocating() {
        let e = read(b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7f").unwrap_err();
        assert_eq!(e.kind, PickleErrorKind::Limit);
        let e = read(b"\x80\x04X\x00\x00\x00\x03abc").unwrap_err();
        assert_eq!(e.kind, PickleErrorKind::Truncated, "{e:?}");
        assert!(e.detail.contains("byte 10"), "{}", e.detail);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut bytes = vec![0x80, 2];
        bytes.extend(std::iter::repeat_n(b']', 200));
        bytes.extend(std::iter::repeat_n(b'a', 199));
        bytes.push(b'.');
        let e = read(&bytes).unwrap_err();
        assert_eq!(e.kind, PickleErrorKind::Limit);
        let mut marks = vec![0x80, 2];
        marks.extend(std::iter::repeat_n(b'(', 1000));
        assert_eq!(read(&marks).unwrap_err().kind, PickleErrorKind::Limit);
    }

    #[test]
    fn truncation_and_garbage_are_clean_errors() {
        assert_eq!(read(b"").unwrap_err().kind, PickleErrorKind::Truncated);
        assert_eq!(
            read(b"\x80\x02}").unwrap_err().kind,
            PickleErrorKind::Truncated
        );
        let e = read(b"\x80\x02\xff").unwrap_err();
        assert_eq!((e.kind, e.offset), (PickleErrorKind::Malformed, 2));
        assert_eq!(
            read(b"\x80\x02e.").unwrap_err().kind,
            PickleErrorKind::Malformed
        );
        assert_eq!(
            read(b"\x80\x02h\x05.").unwrap_err().kind,
            PickleErrorKind::Malformed
        );
        assert_eq!(
            read(b"\x80\x09N.").unwrap_err().kind,
            PickleErrorKind::Malformed
        );
    }

    #[test]
    fn protocol_zero_text_opcodes() {
        // pickle.dumps({'k': [1, 2.5, True, 'é']}, protocol=0)
        let bytes = b"(dp0\nVk\np1\n(lp2\nI1\naF2.5\naI01\naV\xe9\np3\nas.";
        let (heap, root) = read(bytes).unwrap();
        let list = heap.get(root, "k").unwrap();
        let items = heap.items(list).unwrap();
        assert_eq!(
            items[..3],
            [Value::Int(1), Value::Float(2.5), Value::Bool(true)]
        );
        assert_eq!(heap.str(items[3]), Some("é"));
    }

    #[test]
    fn memoize_counts_keys_stored_by_put() {
        // PUT 5, then MEMOIZE stores under 1 (CPython: len(memo)), not 0.
        let bytes = b"\x80\x04Np5\nK\x07\x94h\x01h\x05\x86.";
        let (heap, root) = read(bytes).unwrap();
        assert_eq!(heap.items(root).unwrap(), &[Value::Int(7), Value::None]);
    }

    #[test]
    fn pop_on_an_empty_frame_drops_the_mark() {
        let (_, root) = read(b"\x80\x02K\x01(0.").unwrap();
        assert_eq!(root, Value::Int(1));
    }

    #[test]
    fn memo_shares_one_object() {
        // l = [1]; pickle.dumps([l, l], protocol=4)
        let bytes = b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00]\x94(]\x94K\x01ah\x01e.";
        let (heap, root) = read(bytes).unwrap();
        let items = heap.items(root).unwrap();
        assert_eq!(items[0], items[1]);
    }
}
