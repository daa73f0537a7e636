//! Host-managed, versioned, immutable data sets (ported numbers, number
//! ranges, rate decks, route tables) that plugins read through the
//! `dataset-get` and `dataset-longest-prefix` host imports.
//!
//! A [`Dataset`] is an immutable table built once ([`DatasetBuilder`]) and
//! shared by `Arc`; the [`Datasets`] registry maps names to the current
//! version and swaps versions atomically. A decision takes one snapshot of
//! each data set it reads, so it always sees one consistent version.
//!
//! Layout: keys and values live in one contiguous byte arena; an
//! open-addressing hash table of `u32` slots indexes it. 10 M rows of
//! `11-digit key, 6-byte value` take about 0.4 GB (arena 170 MB, entries
//! 80 MB, slots 128 MB) and nothing is copied into plugin memory except
//! the answer. Longest-prefix lookups probe once per distinct key length
//! present in the data set (at most ~20 for telephone numbers).

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;

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

#[derive(Clone, Copy)]
struct Entry {
    off: u32,
    klen: u8,
    vlen: u16,
}

/// One immutable version of a data set.
pub struct Dataset {
    version: String,
    arena: Vec<u8>,
    entries: Vec<Entry>,
    /// Open-addressing table: entry index + 1, 0 = empty. Length is a power of two.
    slots: Vec<u32>,
    /// Distinct key lengths present, longest first.
    lengths: Vec<u8>,
    rows: usize,
    duplicates: u64,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("version", &self.version)
            .field("rows", &self.len())
            .finish()
    }
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

impl Dataset {
    /// Version label given when the data set was built.
    pub fn version(&self) -> &str {
        &self.version
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

    /// Approximate heap bytes used.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity() + self.entries.capacity() * 8 + self.slots.capacity() * 4
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

    /// Exact-match lookup.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.find(key.as_bytes()).map(|e| self.value_of(e))
    }

    /// The row whose key is the longest prefix of `key`: `(prefix, value)`.
    pub fn longest_prefix<'a>(&'a self, key: &str) -> Option<(&'a str, &'a str)> {
        let kb = key.as_bytes();
        for &len in &self.lengths {
            let len = len as usize;
            if len > kb.len() || !key.is_char_boundary(len) {
                continue;
            }
            if let Some(e) = self.find(&kb[..len]) {
                let k = std::str::from_utf8(self.key_of(e)).unwrap_or("");
                return Some((k, self.value_of(e)));
            }
        }
        None
    }

    /// Builds a data set from `key,value` lines (split at the first comma;
    /// blank lines and lines starting with `#` are skipped; surrounding
    /// whitespace is trimmed).
    pub fn from_csv(
        version: impl Into<String>,
        reader: impl BufRead,
    ) -> Result<Dataset, DatasetError> {
        let mut b = DatasetBuilder::new();
        for (n, line) in reader.lines().enumerate() {
            let line = line?;
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let (k, v) = t
                .split_once(',')
                .ok_or(DatasetError::BadLine { line: n as u64 + 1 })?;
            b.insert(k.trim(), v.trim())?;
        }
        Ok(b.finish(version))
    }
}

/// Builds a [`Dataset`] row by row.
#[derive(Default)]
pub struct DatasetBuilder {
    arena: Vec<u8>,
    entries: Vec<Entry>,
    rows: u64,
}

impl DatasetBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder with room for `rows` rows of `bytes` total.
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        DatasetBuilder {
            arena: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(rows),
            ..Default::default()
        }
    }

    /// Adds a row; a key given again replaces the earlier value.
    pub fn insert(&mut self, key: &str, value: &str) -> Result<(), DatasetError> {
        self.rows += 1;
        if key.len() > 255 || value.len() > 65535 {
            return Err(DatasetError::TooLong { row: self.rows });
        }
        if self.arena.len() + key.len() + value.len() > u32::MAX as usize {
            return Err(DatasetError::TooBig);
        }
        let off = self.arena.len() as u32;
        self.arena.extend_from_slice(key.as_bytes());
        self.arena.extend_from_slice(value.as_bytes());
        if self.entries.len() >= (u32::MAX / 2) as usize {
            return Err(DatasetError::TooBig);
        }
        self.entries.push(Entry {
            off,
            klen: key.len() as u8,
            vlen: value.len() as u16,
        });
        Ok(())
    }

    /// Freezes the rows into an immutable data set labelled `version`.
    pub fn finish(self, version: impl Into<String>) -> Dataset {
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
        Dataset {
            version: version.into(),
            arena,
            entries,
            slots,
            lengths,
            rows: n - duplicates as usize,
            duplicates,
        }
    }
}

/// Summary of one registered data set.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DatasetInfo {
    /// Data set name.
    pub name: String,
    /// Current version label.
    pub version: String,
    /// Number of rows.
    pub rows: usize,
    /// Approximate heap bytes.
    pub bytes: usize,
}

/// The registry of data sets: name → current version, swapped atomically.
#[derive(Default)]
pub struct Datasets {
    map: ArcSwap<HashMap<String, Arc<Dataset>>>,
    write: parking_lot::Mutex<()>,
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
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
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
        assert_eq!(t.get("5511"), Some("SP"));
        assert_eq!(t.get("551"), None);
        assert_eq!(t.longest_prefix("5511333344"), Some(("551133", "SP-city")));
        assert_eq!(t.longest_prefix("5511444"), Some(("5511", "SP")));
        assert_eq!(t.longest_prefix("5521"), Some(("55", "BR")));
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
    }

    #[test]
    fn csv() {
        let src = "# ported numbers\n5511999990000, 55321\n\n5521988887777,55314\n";
        let t = Dataset::from_csv("v1", src.as_bytes()).unwrap();
        assert_eq!(t.get("5511999990000"), Some("55321"));
        assert_eq!(t.len(), 2);
        assert!(Dataset::from_csv("v1", "nocomma\n".as_bytes()).is_err());
    }

    #[test]
    fn many_rows() {
        let mut b = DatasetBuilder::new();
        for i in 0..200_000u64 {
            b.insert(&format!("55{i:09}"), &format!("{}", i % 97))
                .unwrap();
        }
        let t = b.finish("big");
        for i in (0..200_000u64).step_by(7) {
            assert_eq!(
                t.get(&format!("55{i:09}")),
                Some(format!("{}", i % 97).as_str())
            );
        }
        assert_eq!(t.get("55999999999"), None);
    }
}
