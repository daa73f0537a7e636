//! Host-managed, versioned, immutable data sets (ported numbers, number
//! ranges, rate decks, route tables) that plugins read through the
//! `dataset-get` and `dataset-longest-prefix` host imports.
//!
//! A [`Dataset`] is an immutable table built once ([`DatasetBuilder`]) and
//! shared by `Arc`; the [`Datasets`] registry maps names to the current
//! version and swaps versions atomically. A decision takes one snapshot of
//! each data set it reads, so it always sees one consistent version.
//!
//! Two layouts, chosen by the builder from the rows it is given:
//!
//! * **Numeric** (a number-portability or number-range table): every key is
//!   1–19 ASCII digits and there are at most 65,536 distinct values. Keys
//!   are kept as integers in one sorted table per digit count (so `011` and
//!   `11` stay different keys), values are interned once and each row holds
//!   a `u16` value id. A bucket index on the keys' high bits (about one
//!   bucket per two keys) narrows every search to a few neighbouring keys;
//!   when the buckets are at most 2^32 wide only the low 32 bits of each
//!   key are kept: about 8 bytes per row for 11-digit numbers (4 key + 2
//!   value id + ≤ 2 index), 12 bytes per row for keys spread over all 19
//!   digits. Exact lookups search one bucket; longest-prefix lookups one
//!   bucket per distinct key length, longest first.
//! * **Generic** (anything else): keys and values live in one contiguous
//!   byte arena; an open-addressing hash table of `u32` slots indexes it
//!   (about 40 bytes per row for short keys plus the bytes themselves).
//!
//! A builder starts numeric and turns generic (replaying the rows it has,
//! in order) at the first key that is not all digits or the 65,537th
//! distinct value. Both layouts give the same answers: a key given twice
//! keeps its last value. Building is streaming: [`Dataset::from_csv`]
//! reads line by line and holds no second copy of the input; the numeric
//! builder appends 16 bytes per row and sorts them in place once at the end.
//! [`LoadProgress`] counts rows and bytes while a load runs.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;

/// Errors building a data set.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A key longer than 255 bytes or a value longer than 65535 bytes.
    #[error("row {row}: key or value too long (key ≤ 255 bytes, value ≤ 65535 bytes)")]
    TooLong {
        /// 1-based row number.
        row: u64,
    },
    /// The data set does not fit the 4 GiB arena.
    #[error("data set larger than 4 GiB")]
    TooBig,
    /// A CSV line without a comma.
    #[error("line {line}: expected `key,value`")]
    BadLine {
        /// 1-based line number.
        line: u64,
    },
    /// Reading the source failed.
    #[error("reading data set: {0}")]
    Io(#[from] std::io::Error),
}

/// Longest all-digit key kept in the numeric layout (10^19 - 1 < 2^64).
const MAX_DIGITS: usize = 19;
/// Most distinct values the numeric layout interns (`u16` ids).
const MAX_VALUES: usize = 1 << 16;

const POW10: [u64; 20] = {
    let mut p = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// The value of `s` when it is 1–19 ASCII digits.
#[inline]
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > MAX_DIGITS {
        return None;
    }
    let mut v = 0u64;
    for &b in s {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + d as u64;
    }
    Some(v)
}

// ---- generic layout ------------------------------------------------------

#[derive(Clone, Copy)]
struct Entry {
    off: u32,
    klen: u8,
    vlen: u16,
}

struct Generic {
    arena: Vec<u8>,
    entries: Vec<Entry>,
    /// Open-addressing table: entry index + 1, 0 = empty. Length is a power of two.
    slots: Vec<u32>,
    /// Distinct key lengths present, longest first.
    lengths: Vec<u8>,
}

#[inline]
fn hash(key: &[u8]) -> u64 {
    // FNV-1a, then a murmur3 finaliser for well-spread low bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl Generic {
    fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.slots.capacity() * 4
    }

    #[inline]
    fn key_of(&self, e: Entry) -> &[u8] {
        &self.arena[e.off as usize..e.off as usize + e.klen as usize]
    }

    #[inline]
    fn value_of(&self, e: Entry) -> &str {
        let start = e.off as usize + e.klen as usize;
        // Built from `&str` values only.
        std::str::from_utf8(&self.arena[start..start + e.vlen as usize]).unwrap_or("")
    }

    #[inline]
    fn find(&self, key: &[u8]) -> Option<Entry> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = hash(key) as usize & mask;
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            let e = self.entries[(s - 1) as usize];
            if e.klen as usize == key.len() && self.key_of(e) == key {
                return Some(e);
            }
            i = (i + 1) & mask;
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.find(key.as_bytes()).map(|e| self.value_of(e))
    }

    fn longest_prefix<'k>(&self, key: &'k str) -> Option<(&'k str, &str)> {
        let kb = key.as_bytes();
        for &len in &self.lengths {
            let len = len as usize;
            if len > kb.len() || !key.is_char_boundary(len) {
                continue;
            }
            if let Some(e) = self.find(&kb[..len]) {
                return Some((&key[..len], self.value_of(e)));
            }
        }
        None
    }
}

#[derive(Default)]
struct GenericBuilder {
    arena: Vec<u8>,
    entries: Vec<Entry>,
}

impl GenericBuilder {
    fn insert(&mut self, row: u64, key: &str, value: &str) -> Result<(), DatasetError> {
        if key.len() > 255 || value.len() > 65535 {
            return Err(DatasetError::TooLong { row });
        }
        if self.arena.len() + key.len() + value.len() > u32::MAX as usize
            || self.entries.len() >= (u32::MAX / 2) as usize
        {
            return Err(DatasetError::TooBig);
        }
        let off = self.arena.len() as u32;
        self.arena.extend_from_slice(key.as_bytes());
        self.arena.extend_from_slice(value.as_bytes());
        self.entries.push(Entry {
            off,
            klen: key.len() as u8,
            vlen: value.len() as u16,
        });
        Ok(())
    }

    /// The layout and the number of duplicate rows.
    fn finish(mut self) -> (Generic, u64) {
        self.arena.shrink_to_fit();
        self.entries.shrink_to_fit();
        let n = self.entries.len();
        let cap = (n * 2).max(2).next_power_of_two();
        let mut slots = vec![0u32; if n == 0 { 0 } else { cap }];
        let mut lengths: Vec<u8> = Vec::new();
        let mut seen = [false; 256];
        let arena = self.arena;
        let mask = cap.wrapping_sub(1);
        let entries = self.entries;
        let mut duplicates = 0u64;
        for (i, e) in entries.iter().enumerate() {
            let key = &arena[e.off as usize..e.off as usize + e.klen as usize];
            let mut s = hash(key) as usize & mask;
            loop {
                let cur = slots[s];
                if cur == 0 {
                    slots[s] = i as u32 + 1;
                    break;
                }
                let o = entries[(cur - 1) as usize];
                if &arena[o.off as usize..o.off as usize + o.klen as usize] == key {
                    // A later row with the same key replaces the earlier one.
                    slots[s] = i as u32 + 1;
                    duplicates += 1;
                    break;
                }
                s = (s + 1) & mask;
            }
            if !seen[e.klen as usize] {
                seen[e.klen as usize] = true;
                lengths.push(e.klen);
            }
        }
        lengths.sort_unstable_by(|a, b| b.cmp(a));
        (
            Generic {
                arena,
                entries,
                slots,
                lengths,
            },
            duplicates,
        )
    }
}

// ---- numeric layout ------------------------------------------------------

/// Asks the kernel to back the (large) allocation of `v` with transparent
/// huge pages before it is written: a lookup touches three random places
/// of tables of hundreds of MB, and with 4 KiB pages each of them also
/// misses the TLB. A no-op for small vectors and where not supported.
fn advise_huge<T>(v: &Vec<T>) {
    const HUGE: usize = 2 << 20;
    let bytes = v.capacity() * std::mem::size_of::<T>();
    if bytes < 2 * HUGE {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let start = v.as_ptr() as usize;
        let aligned = (start + HUGE - 1) & !(HUGE - 1);
        let end = (start + bytes) & !(HUGE - 1);
        if end > aligned {
            // SAFETY: the range lies inside the vector's own allocation and
            // MADV_HUGEPAGE only changes how it is backed, not its contents.
            unsafe {
                libc::madvise(
                    aligned as *mut libc::c_void,
                    end - aligned,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
}

/// Sorted distinct keys of one digit count.
enum Keys {
    /// Low 32 bits of `key - base` (the bucket gives the rest: `shift` ≤ 32).
    Lo(Vec<u32>),
    /// Whole keys.
    Full(Vec<u64>),
}

/// The keys of one digit count, sorted, with a bucket index on their high
/// bits: the keys `k` with `(k - base) >> shift == h` are at
/// `starts[h]..starts[h + 1]`, so a lookup reads one `starts` pair and
/// searches a few neighbouring keys (one or two cache lines) instead of
/// binary-searching the whole table.
struct NumTable {
    digits: u8,
    base: u64,
    shift: u32,
    starts: Vec<u32>,
    keys: Keys,
    /// Value id of each key, in key order.
    ids: Vec<u16>,
}

impl NumTable {
    #[inline]
    fn find(&self, key: u64) -> Option<usize> {
        let off = key.checked_sub(self.base)?;
        let h = (off >> self.shift) as usize;
        if h + 1 >= self.starts.len() {
            return None;
        }
        let (a, b) = (self.starts[h] as usize, self.starts[h + 1] as usize);
        let i = match &self.keys {
            Keys::Lo(k) => k[a..b].binary_search(&(off as u32)).ok()?,
            Keys::Full(k) => k[a..b].binary_search(&key).ok()?,
        };
        Some(a + i)
    }

    fn heap_bytes(&self) -> usize {
        let k = match &self.keys {
            Keys::Lo(k) => k.capacity() * 4,
            Keys::Full(k) => k.capacity() * 8,
        };
        k + self.starts.capacity() * 4 + self.ids.capacity() * 2
    }

    /// The table of sorted `rows` of one digit count (runs of equal keys:
    /// the last row wins).
    fn build(digits: u8, group: &[NumRow]) -> (NumTable, u64) {
        let last = |k: usize| k + 1 == group.len() || group[k + 1].key != group[k].key;
        let distinct = (0..group.len()).filter(|&k| last(k)).count();
        let (base, max) = (group[0].key, group[group.len() - 1].key);
        // about one bucket per two keys (≤ 2 bytes per row of index)
        let want = (distinct as u64 / 2).max(1);
        let mut shift = 0u32;
        while shift < 63 && ((max - base) >> shift) >= want {
            shift += 1;
        }
        let buckets = ((max - base) >> shift) as usize + 1;
        let mut starts = vec![0u32; buckets + 1];
        let mut ids = Vec::with_capacity(distinct);
        let mut lo = Vec::new();
        let mut full = Vec::new();
        if shift <= 32 {
            lo.reserve_exact(distinct);
        } else {
            full.reserve_exact(distinct);
        }
        advise_huge(&starts);
        advise_huge(&ids);
        advise_huge(&lo);
        advise_huge(&full);
        for (k, r) in group.iter().enumerate() {
            if last(k) {
                starts[((r.key - base) >> shift) as usize + 1] += 1;
                if shift <= 32 {
                    lo.push((r.key - base) as u32);
                } else {
                    full.push(r.key);
                }
                ids.push(r.id);
            }
        }
        for h in 1..starts.len() {
            starts[h] += starts[h - 1];
        }
        let keys = if shift <= 32 {
            Keys::Lo(lo)
        } else {
            Keys::Full(full)
        };
        (
            NumTable {
                digits,
                base,
                shift,
                starts,
                keys,
                ids,
            },
            (group.len() - distinct) as u64,
        )
    }
}

struct Numeric {
    /// Interned values: `values[offs[i]..offs[i + 1]]` is value id `i`.
    values: String,
    offs: Vec<u32>,
    /// One table per digit count present, most digits first.
    tables: Vec<NumTable>,
    /// Digit count → index into `tables` + 1 (0 = none).
    by_digits: [u8; MAX_DIGITS + 1],
}

impl Numeric {
    fn heap_bytes(&self) -> usize {
        self.values.capacity()
            + self.offs.capacity() * 4
            + self.tables.iter().map(NumTable::heap_bytes).sum::<usize>()
    }

    #[inline]
    fn value(&self, id: u16) -> &str {
        let i = id as usize;
        &self.values[self.offs[i] as usize..self.offs[i + 1] as usize]
    }

    fn get(&self, key: &str) -> Option<&str> {
        let v = digits(key.as_bytes())?;
        let t = self.by_digits[key.len()];
        if t == 0 {
            return None;
        }
        let t = &self.tables[t as usize - 1];
        t.find(v).map(|i| self.value(t.ids[i]))
    }

    fn longest_prefix<'k>(&self, key: &'k str) -> Option<(&'k str, &str)> {
        let kb = key.as_bytes();
        // Only the leading digits can match a numeric key.
        let m = kb
            .iter()
            .take(MAX_DIGITS)
            .take_while(|b| b.is_ascii_digit())
            .count();
        let v = digits(&kb[..m]).unwrap_or(0);
        for t in &self.tables {
            let n = t.digits as usize;
            if n > m {
                continue;
            }
            if let Some(i) = t.find(v / POW10[m - n]) {
                return Some((&key[..n], self.value(t.ids[i])));
            }
        }
        None
    }
}

/// One row while a numeric data set is built (16 bytes).
#[derive(Clone, Copy)]
struct NumRow {
    key: u64,
    /// Input order, so the last of equal keys wins after an unstable sort.
    seq: u32,
    id: u16,
    digits: u8,
}

#[derive(Default)]
struct NumericBuilder {
    rows: Vec<NumRow>,
    values: String,
    offs: Vec<u32>,
    intern: HashMap<Box<str>, u16>,
}

impl NumericBuilder {
    /// The id of `value`, or None when the value table is full.
    fn intern(&mut self, value: &str) -> Option<u16> {
        if let Some(&id) = self.intern.get(value) {
            return Some(id);
        }
        if self.intern.len() >= MAX_VALUES {
            return None;
        }
        if self.offs.is_empty() {
            self.offs.push(0);
        }
        let id = self.intern.len() as u16;
        self.values.push_str(value);
        self.offs.push(self.values.len() as u32);
        self.intern.insert(value.into(), id);
        Some(id)
    }

    /// Replays the rows, in input order, into a generic builder.
    fn into_generic(self) -> Result<GenericBuilder, DatasetError> {
        let mut g = GenericBuilder::default();
        let mut k = String::new();
        for (i, r) in self.rows.iter().enumerate() {
            use std::fmt::Write;
            k.clear();
            let _ = write!(k, "{:0w$}", r.key, w = r.digits as usize);
            let v = &self.values
                [self.offs[r.id as usize] as usize..self.offs[r.id as usize + 1] as usize];
            g.insert(i as u64 + 1, &k, v)?;
        }
        Ok(g)
    }

    /// The layout and the number of duplicate rows.
    fn finish(self) -> (Numeric, u64) {
        let NumericBuilder {
            mut rows,
            mut values,
            mut offs,
            intern,
        } = self;
        drop(intern);
        if offs.is_empty() {
            offs.push(0);
        }
        values.shrink_to_fit();
        offs.shrink_to_fit();
        // In place: the most digits first, then by key, then input order.
        rows.sort_unstable_by_key(|r| (std::cmp::Reverse(r.digits), r.key, r.seq));
        let mut tables = Vec::new();
        let mut by_digits = [0u8; MAX_DIGITS + 1];
        let mut duplicates = 0u64;
        let mut i = 0;
        while i < rows.len() {
            let d = rows[i].digits;
            let mut j = i;
            while j < rows.len() && rows[j].digits == d {
                j += 1;
            }
            let (table, dups) = NumTable::build(d, &rows[i..j]);
            duplicates += dups;
            tables.push(table);
            by_digits[d as usize] = tables.len() as u8;
            i = j;
        }
        drop(rows);
        (
            Numeric {
                values,
                offs,
                tables,
                by_digits,
            },
            duplicates,
        )
    }
}

// ---- the data set ----------------------------------------------------------

enum Layout {
    Generic(Generic),
    Numeric(Numeric),
}

/// One immutable version of a data set.
pub struct Dataset {
    version: String,
    layout: Layout,
    rows: usize,
    duplicates: u64,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("version", &self.version)
            .field("rows", &self.len())
            .field("layout", &self.layout_name())
            .finish()
    }
}

impl Dataset {
    /// Version label given when the data set was built.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Relabels this version.
    pub fn set_version(&mut self, version: impl Into<String>) {
        self.version = version.into();
    }

    /// Number of rows (distinct keys).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when the data set has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Rows whose key appeared more than once in the source (the last one won).
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// `numeric` or `generic` (see the module documentation).
    pub fn layout_name(&self) -> &'static str {
        match self.layout {
            Layout::Generic(_) => "generic",
            Layout::Numeric(_) => "numeric",
        }
    }

    /// Heap bytes held by the data set's tables.
    pub fn heap_bytes(&self) -> usize {
        match &self.layout {
            Layout::Generic(g) => g.heap_bytes(),
            Layout::Numeric(n) => n.heap_bytes(),
        }
    }

    /// Exact-match lookup.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&str> {
        match &self.layout {
            Layout::Generic(g) => g.get(key),
            Layout::Numeric(n) => n.get(key),
        }
    }

    /// The row whose key is the longest prefix of `key`: `(prefix, value)`.
    /// The prefix is the leading part of `key` equal to the row's key.
    #[inline]
    pub fn longest_prefix<'a, 'k>(&'a self, key: &'k str) -> Option<(&'k str, &'a str)> {
        match &self.layout {
            Layout::Generic(g) => g.longest_prefix(key),
            Layout::Numeric(n) => n.longest_prefix(key),
        }
    }

    /// Builds a data set from `key,value` lines (split at the first comma;
    /// blank lines and lines starting with `#` are skipped; surrounding
    /// whitespace is trimmed), reading line by line.
    pub fn from_csv(
        version: impl Into<String>,
        reader: impl BufRead,
    ) -> Result<Dataset, DatasetError> {
        Self::from_csv_with_progress(version, reader, &LoadProgress::default())
    }

    /// [`Dataset::from_csv`], counting rows and bytes into `progress` as it goes.
    pub fn from_csv_with_progress(
        version: impl Into<String>,
        mut reader: impl BufRead,
        progress: &LoadProgress,
    ) -> Result<Dataset, DatasetError> {
        let mut b = DatasetBuilder::new();
        let mut line = String::new();
        let mut n = 0u64;
        loop {
            line.clear();
            let got = reader.read_line(&mut line)?;
            if got == 0 {
                break;
            }
            n += 1;
            progress.add_bytes(got as u64);
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let (k, v) = t.split_once(',').ok_or(DatasetError::BadLine { line: n })?;
            b.insert(k.trim(), v.trim())?;
            progress.add_row();
        }
        progress.set_phase(LoadPhase::Indexing);
        Ok(b.finish(version))
    }
}

enum BuilderState {
    Numeric(NumericBuilder),
    Generic(GenericBuilder),
}

/// Builds a [`Dataset`] row by row (see the module documentation for the
/// layout it picks).
pub struct DatasetBuilder {
    state: BuilderState,
    rows: u64,
}

impl Default for DatasetBuilder {
    fn default() -> Self {
        DatasetBuilder {
            state: BuilderState::Numeric(NumericBuilder::default()),
            rows: 0,
        }
    }
}

impl DatasetBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder that always builds the generic layout (for
    /// comparisons in benchmarks and tests).
    #[doc(hidden)]
    pub fn generic() -> Self {
        DatasetBuilder {
            state: BuilderState::Generic(GenericBuilder::default()),
            rows: 0,
        }
    }

    /// An empty builder with room for `rows` rows (`bytes` is a hint for
    /// the generic layout and otherwise unused).
    pub fn with_capacity(rows: usize, _bytes: usize) -> Self {
        let mut b = Self::default();
        if let BuilderState::Numeric(n) = &mut b.state {
            n.rows.reserve(rows);
        }
        b
    }

    /// Adds a row; a key given again replaces the earlier value.
    pub fn insert(&mut self, key: &str, value: &str) -> Result<(), DatasetError> {
        self.rows += 1;
        if let BuilderState::Numeric(nb) = &mut self.state {
            if value.len() > 65535 {
                return Err(DatasetError::TooLong { row: self.rows });
            }
            if self.rows > u32::MAX as u64 {
                return Err(DatasetError::TooBig);
            }
            if let Some(k) = digits(key.as_bytes())
                && let Some(id) = nb.intern(value)
            {
                nb.rows.push(NumRow {
                    key: k,
                    seq: (self.rows - 1) as u32,
                    id,
                    digits: key.len() as u8,
                });
                return Ok(());
            }
            // Not a numeric table (after all): replay what we have.
            let BuilderState::Numeric(nb) =
                std::mem::replace(&mut self.state, BuilderState::Generic(Default::default()))
            else {
                unreachable!()
            };
            self.state = BuilderState::Generic(nb.into_generic()?);
        }
        match &mut self.state {
            BuilderState::Generic(g) => g.insert(self.rows, key, value),
            BuilderState::Numeric(_) => unreachable!(),
        }
    }

    /// Freezes the rows into an immutable data set labelled `version`.
    pub fn finish(self, version: impl Into<String>) -> Dataset {
        let total = match &self.state {
            BuilderState::Numeric(n) => n.rows.len(),
            BuilderState::Generic(g) => g.entries.len(),
        };
        let (layout, duplicates) = match self.state {
            BuilderState::Numeric(n) => {
                let (n, d) = n.finish();
                (Layout::Numeric(n), d)
            }
            BuilderState::Generic(g) => {
                let (g, d) = g.finish();
                (Layout::Generic(g), d)
            }
        };
        Dataset {
            version: version.into(),
            layout,
            rows: total - duplicates as usize,
            duplicates,
        }
    }
}

// ---- loads in progress -----------------------------------------------------

/// What a running load is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadPhase {
    /// Reading and parsing rows.
    Reading,
    /// Sorting and indexing the rows read.
    Indexing,
    /// Storing the version (e.g. in the control store).
    Storing,
}

/// Counters of a running load, readable from other threads while it runs.
#[derive(Debug)]
pub struct LoadProgress {
    rows: AtomicU64,
    bytes: AtomicU64,
    phase: AtomicU64,
    started: Instant,
    /// Log a line every this many rows (0 = never).
    log_every: u64,
    name: String,
}

impl Default for LoadProgress {
    fn default() -> Self {
        LoadProgress::new("", 0)
    }
}

/// Rows between two progress log lines of a load.
pub const LOG_EVERY_ROWS: u64 = 1_000_000;

impl LoadProgress {
    /// Counters for a load of data set `name`, logging every `log_every` rows.
    pub fn new(name: impl Into<String>, log_every: u64) -> Self {
        LoadProgress {
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            phase: AtomicU64::new(0),
            started: Instant::now(),
            log_every,
            name: name.into(),
        }
    }

    /// Counts one row read.
    #[inline]
    pub fn add_row(&self) {
        let n = self.rows.fetch_add(1, Ordering::Relaxed) + 1;
        if self.log_every != 0 && n.is_multiple_of(self.log_every) {
            tracing::info!(
                dataset = %self.name,
                rows = n,
                bytes = self.bytes(),
                elapsed_ms = self.started.elapsed().as_millis() as u64,
                "data set load progress"
            );
        }
    }

    /// Counts `n` bytes read.
    #[inline]
    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Rows read so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Moves the load to `phase`.
    pub fn set_phase(&self, phase: LoadPhase) {
        self.phase.store(phase as u64, Ordering::Relaxed);
        if self.log_every != 0 {
            tracing::info!(
                dataset = %self.name,
                rows = self.rows(),
                bytes = self.bytes(),
                phase = ?phase,
                elapsed_ms = self.started.elapsed().as_millis() as u64,
                "data set load phase"
            );
        }
    }

    /// The current phase.
    pub fn phase(&self) -> LoadPhase {
        match self.phase.load(Ordering::Relaxed) {
            0 => LoadPhase::Reading,
            1 => LoadPhase::Indexing,
            _ => LoadPhase::Storing,
        }
    }

    /// Time since the load started.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}

/// A load in progress as listed by [`Datasets::loading`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadInfo {
    /// Data set name.
    pub name: String,
    /// Rows read so far.
    pub rows: u64,
    /// Bytes read so far.
    pub bytes: u64,
    /// What the load is doing.
    pub phase: LoadPhase,
    /// Milliseconds since the load started.
    pub elapsed_ms: u64,
}

/// Running loads by id.
type LoadList = parking_lot::Mutex<Vec<(u64, Arc<LoadProgress>)>>;

/// Registration of a running load; dropping it removes the entry from
/// [`Datasets::loading`].
pub struct LoadGuard {
    registry: Arc<LoadList>,
    id: u64,
    progress: Arc<LoadProgress>,
}

impl LoadGuard {
    /// The counters of this load.
    pub fn progress(&self) -> &Arc<LoadProgress> {
        &self.progress
    }
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.registry.lock().retain(|(id, _)| *id != self.id);
    }
}

// ---- registry --------------------------------------------------------------

/// Summary of one registered data set.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DatasetInfo {
    /// Data set name.
    pub name: String,
    /// Current version label.
    pub version: String,
    /// Number of rows.
    pub rows: usize,
    /// Heap bytes of the tables.
    pub bytes: usize,
    /// `numeric` or `generic`.
    pub layout: &'static str,
}

/// The registry of data sets: name → current version, swapped atomically.
#[derive(Default)]
pub struct Datasets {
    map: ArcSwap<HashMap<String, Arc<Dataset>>>,
    write: parking_lot::Mutex<()>,
    loads: Arc<LoadList>,
    next_load: AtomicU64,
}

impl Datasets {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a data set from rows and makes it the current version of `name`.
    pub fn put<K: AsRef<str>, V: AsRef<str>>(
        &self,
        name: &str,
        version: impl Into<String>,
        rows: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Arc<Dataset>, DatasetError> {
        let mut b = DatasetBuilder::new();
        for (k, v) in rows {
            b.insert(k.as_ref(), v.as_ref())?;
        }
        let ds = Arc::new(b.finish(version));
        self.put_dataset(name, ds.clone());
        Ok(ds)
    }

    /// Makes `dataset` the current version of `name` (atomically; decisions
    /// already running keep the version they started with).
    pub fn put_dataset(&self, name: &str, dataset: Arc<Dataset>) {
        let _w = self.write.lock();
        let mut m = HashMap::clone(&self.map.load());
        m.insert(name.to_string(), dataset);
        self.map.store(Arc::new(m));
    }

    /// Removes `name`; returns whether it existed.
    pub fn remove(&self, name: &str) -> bool {
        let _w = self.write.lock();
        let mut m = HashMap::clone(&self.map.load());
        let had = m.remove(name).is_some();
        self.map.store(Arc::new(m));
        had
    }

    /// The current version of `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Dataset>> {
        self.map.load().get(name).cloned()
    }

    /// All data sets, sorted by name.
    pub fn list(&self) -> Vec<DatasetInfo> {
        let m = self.map.load();
        let mut v: Vec<_> = m
            .iter()
            .map(|(n, d)| DatasetInfo {
                name: n.clone(),
                version: d.version.clone(),
                rows: d.len(),
                bytes: d.heap_bytes(),
                layout: d.layout_name(),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Registers a load of `name` (listed by [`Datasets::loading`] until the
    /// guard is dropped); its counters log every [`LOG_EVERY_ROWS`] rows.
    pub fn begin_load(&self, name: &str) -> LoadGuard {
        let id = self.next_load.fetch_add(1, Ordering::Relaxed);
        let progress = Arc::new(LoadProgress::new(name, LOG_EVERY_ROWS));
        self.loads.lock().push((id, progress.clone()));
        LoadGuard {
            registry: self.loads.clone(),
            id,
            progress,
        }
    }

    /// Loads running now, oldest first.
    pub fn loading(&self) -> Vec<LoadInfo> {
        self.loads
            .lock()
            .iter()
            .map(|(_, p)| LoadInfo {
                name: p.name.clone(),
                rows: p.rows(),
                bytes: p.bytes(),
                phase: p.phase(),
                elapsed_ms: p.elapsed().as_millis() as u64,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_prefix() {
        let d = Datasets::new();
        d.put(
            "r",
            "1",
            [
                ("55", "BR"),
                ("5511", "SP"),
                ("551133", "SP-city"),
                ("1", "NANP"),
            ],
        )
        .unwrap();
        let t = d.get("r").unwrap();
        assert_eq!(t.layout_name(), "numeric");
        assert_eq!(t.get("5511"), Some("SP"));
        assert_eq!(t.get("551"), None);
        assert_eq!(t.longest_prefix("5511333344"), Some(("551133", "SP-city")));
        assert_eq!(t.longest_prefix("5511444"), Some(("5511", "SP")));
        assert_eq!(t.longest_prefix("5521"), Some(("55", "BR")));
        assert_eq!(t.longest_prefix("5521x"), Some(("55", "BR")));
        assert_eq!(t.longest_prefix("44"), None);
        assert_eq!(t.longest_prefix(""), None);
    }

    #[test]
    fn duplicates_last_wins_and_swap() {
        let d = Datasets::new();
        let t = d.put("x", "a", [("k", "1"), ("k", "2")]).unwrap();
        assert_eq!(t.get("k"), Some("2"));
        assert_eq!(t.len(), 1);
        assert_eq!(t.duplicates(), 1);
        d.put("x", "b", [("k", "3")]).unwrap();
        assert_eq!(t.get("k"), Some("2"), "old snapshot unchanged");
        assert_eq!(d.get("x").unwrap().get("k"), Some("3"));
        assert_eq!(d.get("x").unwrap().version(), "b");
        assert!(d.remove("x"));
        assert!(d.get("x").is_none());
        let n = d
            .put("n", "a", [("011", "1"), ("11", "2"), ("011", "3")])
            .unwrap();
        assert_eq!(n.layout_name(), "numeric");
        assert_eq!(
            (n.get("011"), n.get("11"), n.len()),
            (Some("3"), Some("2"), 2)
        );
        assert_eq!(n.duplicates(), 1);
    }

    #[test]
    fn csv() {
        let src = "# ported numbers\n5511999990000, 55321\n\n5521988887777,55314\n";
        let t = Dataset::from_csv("v1", src.as_bytes()).unwrap();
        assert_eq!(t.get("5511999990000"), Some("55321"));
        assert_eq!(t.len(), 2);
        assert!(Dataset::from_csv("v1", "nocomma\n".as_bytes()).is_err());
        let p = LoadProgress::default();
        Dataset::from_csv_with_progress("v1", src.as_bytes(), &p).unwrap();
        assert_eq!((p.rows(), p.bytes()), (2, src.len() as u64));
        assert_eq!(p.phase(), LoadPhase::Indexing);
    }

    #[test]
    fn many_rows() {
        let mut b = DatasetBuilder::new();
        for i in 0..200_000u64 {
            b.insert(&format!("55{i:09}"), &format!("{}", i % 97))
                .unwrap();
        }
        let t = b.finish("big");
        assert_eq!(t.layout_name(), "numeric");
        for i in (0..200_000u64).step_by(7) {
            assert_eq!(
                t.get(&format!("55{i:09}")),
                Some(format!("{}", i % 97).as_str())
            );
        }
        assert_eq!(t.get("55999999999"), None);
        // 4-byte key + 2-byte value id + ≤ 2-byte index per row
        assert!(t.heap_bytes() <= 200_000 * 8 + 4096, "{}", t.heap_bytes());
    }

    /// A small deterministic generator (xorshift).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        /// `lo` to `lo + span - 1` random digits.
        fn some_digits(&mut self, lo: usize, span: u64) -> String {
            let n = lo + self.below(span) as usize;
            self.digits(n)
        }
        fn digits(&mut self, n: usize) -> String {
            (0..n)
                .map(|_| (b'0' + self.below(10) as u8) as char)
                .collect()
        }
    }

    fn generic_of(rows: &[(String, String)]) -> Dataset {
        let mut g = GenericBuilder::default();
        for (i, (k, v)) in rows.iter().enumerate() {
            g.insert(i as u64 + 1, k, v).unwrap();
        }
        let (g, d) = g.finish();
        Dataset {
            version: "g".into(),
            rows: rows.len() - d as usize,
            layout: Layout::Generic(g),
            duplicates: d,
        }
    }

    /// The numeric layout answers exactly like the generic one: random
    /// keys of 1–19 digits with leading zeros, duplicates, keys that are
    /// prefixes of other keys, queries longer, shorter, with non-digits.
    #[test]
    fn numeric_matches_generic() {
        for seed in 1..=8u64 {
            let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut rows: Vec<(String, String)> = Vec::new();
            let base = r.digits(19);
            for _ in 0..3000 {
                let k = match r.below(4) {
                    // prefixes of one long number (nested keys)
                    0 => base[..1 + r.below(19) as usize].to_string(),
                    // leading zeros
                    1 => format!("0{}", r.some_digits(0, 18)),
                    // a duplicate of an earlier key
                    2 if !rows.is_empty() => rows[r.below(rows.len() as u64) as usize].0.clone(),
                    _ => r.some_digits(1, 19),
                };
                let v = if r.below(50) == 0 {
                    String::new()
                } else {
                    format!("v{}", r.below(30))
                };
                rows.push((k, v));
            }
            let mut b = DatasetBuilder::new();
            for (k, v) in &rows {
                b.insert(k, v).unwrap();
            }
            let n = b.finish("n");
            assert_eq!(n.layout_name(), "numeric");
            let g = generic_of(&rows);
            assert_eq!((n.len(), n.duplicates()), (g.len(), g.duplicates()));
            let mut queries: Vec<String> = rows.iter().map(|(k, _)| k.clone()).collect();
            for _ in 0..3000 {
                let mut q = match r.below(3) {
                    0 => format!("{}{}", base, r.some_digits(0, 4)),
                    1 => base[..r.below(20) as usize].to_string(),
                    _ => r.some_digits(0, 24),
                };
                if r.below(10) == 0 && !q.is_empty() {
                    let at = r.below(q.len() as u64) as usize;
                    q.insert(at, ['+', 'a', ' ', 'é'][r.below(4) as usize]);
                }
                queries.push(q);
            }
            for q in &queries {
                assert_eq!(n.get(q), g.get(q), "get {q:?} seed {seed}");
                assert_eq!(
                    n.longest_prefix(q),
                    g.longest_prefix(q),
                    "prefix {q:?} seed {seed}"
                );
            }
        }
    }

    /// Keys spread over the whole 19-digit range keep whole `u64` keys.
    #[test]
    fn wide_keys() {
        let mut r = Rng(7);
        let rows: Vec<(String, String)> = (0..5000)
            .map(|i| (r.digits(19), format!("{}", i % 3)))
            .collect();
        let mut b = DatasetBuilder::new();
        for (k, v) in &rows {
            b.insert(k, v).unwrap();
        }
        let n = b.finish("n");
        let g = generic_of(&rows);
        assert!(matches!(
            &n.layout,
            Layout::Numeric(x) if matches!(x.tables[0].keys, Keys::Full(_))
        ));
        for (k, _) in &rows {
            assert_eq!(n.get(k), g.get(k));
            assert_eq!(
                n.longest_prefix(&format!("{k}9")),
                g.longest_prefix(&format!("{k}9"))
            );
        }
        assert_eq!(n.get("9999999999999999999"), g.get("9999999999999999999"));
    }

    /// A non-digit key or too many distinct values turn the builder
    /// generic, keeping every earlier row and the last-wins rule.
    #[test]
    fn falls_back_to_generic() {
        let mut b = DatasetBuilder::new();
        b.insert("0011", "a").unwrap();
        b.insert("11", "b").unwrap();
        b.insert("0011", "c").unwrap();
        b.insert("+5511", "d").unwrap();
        b.insert("11", "e").unwrap();
        let t = b.finish("g");
        assert_eq!(t.layout_name(), "generic");
        assert_eq!(
            (t.get("0011"), t.get("11"), t.get("+5511")),
            (Some("c"), Some("e"), Some("d"))
        );
        assert_eq!((t.len(), t.duplicates()), (3, 2));
        assert_eq!(t.longest_prefix("00119"), Some(("0011", "c")));

        let mut b = DatasetBuilder::new();
        for i in 0..(MAX_VALUES as u64 + 10) {
            b.insert(&format!("{i:07}"), &format!("name-{i}")).unwrap();
        }
        b.insert("0000001", "again").unwrap();
        let t = b.finish("g");
        assert_eq!(t.layout_name(), "generic");
        assert_eq!(t.get("0000001"), Some("again"));
        assert_eq!(t.get("0065545"), Some("name-65545"));
        assert_eq!(t.len(), MAX_VALUES + 10);
    }

    #[test]
    fn loads_are_listed_while_running() {
        let d = Datasets::new();
        let g = d.begin_load("big");
        g.progress().add_bytes(10);
        g.progress().add_row();
        let l = d.loading();
        assert_eq!((l.len(), l[0].rows, l[0].bytes), (1, 1, 10));
        assert_eq!(l[0].name, "big");
        drop(g);
        assert!(d.loading().is_empty());
    }
}
