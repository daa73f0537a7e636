//! Data-set load and lookup at national scale: a number-portability table
//! of synthetic Brazilian numbers (11-digit national numbers `DDD 9 xxxx
//! xxxx`, plus 1 % 7-digit number ranges `DDD 9 xxxx`) with 30 distinct
//! routing numbers (`55` + 3-digit carrier code).
//!
//! Per size it reports: load time and rows/s (streamed from a CSV file,
//! the way uploads and config files load), heap bytes per row of the built
//! tables, the resident-memory growth (VmRSS) and peak (VmHWM) per row, and
//! lookup latency p50/p99/p99.9 of exact gets (present and absent keys) and
//! longest-prefix lookups, each timed one by one. While a load runs, a
//! second thread keeps doing lookups on the version being replaced through
//! the registry (as calls do) and counts wrong answers and its latency.
//!
//! Run: `cargo bench --workspace --bench datasets`
//! (`STROWGER_BENCH_DS_ROWS=1000000,10000000,50000000` sets the sizes,
//! default 1 M and 10 M; `STROWGER_BENCH_DS_LAYOUT=generic` forces the
//! generic layout for comparison; CSV files are cached in
//! `$CARGO_TARGET_DIR/tmp` or the system temp directory).

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strowger_plugin::{Dataset, DatasetBuilder, Datasets, LoadProgress};

/// Brazilian area codes (DDD).
const DDD: [u32; 67] = [
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 24, 27, 28, 31, 32, 33, 34, 35, 37, 38, 41, 42, 43,
    44, 45, 46, 47, 48, 49, 51, 53, 54, 55, 61, 62, 63, 64, 65, 66, 67, 68, 69, 71, 73, 74, 75, 77,
    79, 81, 82, 83, 84, 85, 86, 87, 88, 89, 91, 92, 93, 94, 95, 96, 97, 98, 99,
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn number(&mut self) -> String {
        let r = self.next();
        format!("{}9{:08}", DDD[(r % 67) as usize], (r >> 8) % 100_000_000)
    }
}

fn carrier(i: u64) -> String {
    format!("55{}", 300 + (i % 30) * 3)
}

fn csv_path(rows: u64) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| PathBuf::from(d).join("tmp"))
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("lnp-br-{rows}.csv"))
}

/// Writes (once) the CSV of `rows` rows; every 100th row is a 7-digit range.
fn ensure_csv(rows: u64) -> PathBuf {
    let p = csv_path(rows);
    if p.exists() {
        return p;
    }
    let tmp = p.with_extension("tmp");
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).unwrap());
    let mut r = Rng(0x5eed ^ rows);
    writeln!(w, "# synthetic LNP table, {rows} rows").unwrap();
    for i in 0..rows {
        let n = r.number();
        if i % 100 == 0 {
            writeln!(w, "{},{}", &n[..7], carrier(i)).unwrap();
        } else {
            writeln!(w, "{n},{}", carrier(i)).unwrap();
        }
    }
    w.flush().unwrap();
    drop(w);
    std::fs::rename(&tmp, &p).unwrap();
    p
}

fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn pct(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

fn lat(name: &str, mut ns: Vec<u64>) {
    let (p50, p99, p999) = (pct(&mut ns, 0.5), pct(&mut ns, 0.99), pct(&mut ns, 0.999));
    let max = *ns.last().unwrap();
    println!("| {name} | {} | {p50} | {p99} | {p999} | {max} |", ns.len());
}

fn load(path: &PathBuf, generic: bool, progress: &LoadProgress) -> Dataset {
    let f = std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(path).unwrap());
    if !generic {
        return Dataset::from_csv_with_progress("bench", f, progress).unwrap();
    }
    let mut b = DatasetBuilder::generic();
    for line in f.lines() {
        let line = line.unwrap();
        progress.add_bytes(line.len() as u64 + 1);
        if line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once(',').unwrap();
        b.insert(k, v).unwrap();
        progress.add_row();
    }
    b.finish("bench")
}

fn main() {
    // `cargo bench` passes `--bench`; sizes come from the environment.
    let sizes: Vec<u64> = std::env::var("STROWGER_BENCH_DS_ROWS")
        .unwrap_or_else(|_| "1000000,10000000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("STROWGER_BENCH_DS_ROWS: numbers"))
        .collect();
    let generic = std::env::var("STROWGER_BENCH_DS_LAYOUT").as_deref() == Ok("generic");
    let registry = Arc::new(Datasets::new());
    // The version the "calls" thread reads while the big one loads.
    registry
        .put(
            "br-ported",
            "small",
            (0..1000u64).map(|i| (format!("1199{i:07}"), carrier(i))),
        )
        .unwrap();
    for rows in sizes {
        let t = Instant::now();
        let path = ensure_csv(rows);
        let file_bytes = std::fs::metadata(&path).unwrap().len();
        println!(
            "\n## {rows} rows ({} MB CSV{}; file ready in {:.1} s)\n",
            file_bytes >> 20,
            if generic {
                ", generic layout forced"
            } else {
                ""
            },
            t.elapsed().as_secs_f64()
        );
        // Lookups through the registry while the load runs.
        let stop = Arc::new(AtomicBool::new(false));
        let wrong = Arc::new(AtomicU64::new(0));
        let reader = {
            let (reg, stop, wrong) = (registry.clone(), stop.clone(), wrong.clone());
            std::thread::spawn(move || {
                let mut ns = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let k = format!("1199{:07}", i % 1000);
                    let t = Instant::now();
                    let d = reg.get("br-ported").unwrap();
                    let got = d.get(&k).map(str::to_string);
                    ns.push(t.elapsed().as_nanos() as u64);
                    if d.version() == "small" && got != Some(carrier(i % 1000)) {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                    // about 20 k lookups/s, like a busy switch's portability hooks
                    std::thread::sleep(Duration::from_micros(50));
                }
                ns
            })
        };
        reset_peak();
        let rss0 = status_kb("VmRSS:");
        let progress = LoadProgress::new("bench", 0);
        let t = Instant::now();
        let ds = load(&path, generic, &progress);
        let secs = t.elapsed().as_secs_f64();
        let rss1 = status_kb("VmRSS:");
        let hwm = status_kb("VmHWM:");
        stop.store(true, Ordering::Relaxed);
        let during = reader.join().unwrap();
        let n = ds.len() as f64;
        println!("| measure | value |\n|---|---|");
        println!("| layout | {} |", ds.layout_name());
        println!(
            "| rows read / distinct / duplicates | {} / {} / {} |",
            progress.rows(),
            ds.len(),
            ds.duplicates()
        );
        println!(
            "| load time | {secs:.2} s ({:.2} M rows/s, {:.0} MB/s) |",
            progress.rows() as f64 / secs / 1e6,
            progress.bytes() as f64 / secs / 1e6
        );
        println!(
            "| heap bytes per row | {:.2} ({} MB) |",
            ds.heap_bytes() as f64 / n,
            ds.heap_bytes() >> 20
        );
        println!(
            "| VmRSS growth per row | {:.2} ({} MB) |",
            (rss1.saturating_sub(rss0) * 1024) as f64 / n,
            rss1.saturating_sub(rss0) >> 10
        );
        println!(
            "| VmHWM (peak) above start, per row | {:.2} ({} MB) |",
            (hwm.saturating_sub(rss0) * 1024) as f64 / n,
            hwm.saturating_sub(rss0) >> 10
        );
        println!(
            "| lookups during the load (old version) | {} done, {} wrong |",
            during.len(),
            wrong.load(Ordering::Relaxed)
        );
        let ds = Arc::new(ds);
        registry.put_dataset("br-ported", ds.clone());
        // Lookup latency on the new version, one call timed at a time.
        let mut r = Rng(0x5eed ^ rows);
        let sample: Vec<String> = (0..rows.min(200_000)).map(|_| r.number()).collect();
        let mut probe = Rng(99);
        let queries: Vec<String> = (0..200_000).map(|_| probe.number()).collect();
        println!(
            "\n| lookup (ns, one at a time) | n | p50 | p99 | p99.9 | max |\n|---|---|---|---|---|---|"
        );
        for round in 0..2 {
            let mut ex = Vec::with_capacity(sample.len());
            let mut hits = 0;
            for k in &sample {
                let t = Instant::now();
                let d = registry.get("br-ported").unwrap();
                let v = std::hint::black_box(d.get(k));
                ex.push(t.elapsed().as_nanos() as u64);
                hits += v.is_some() as u32;
            }
            let mut ab = Vec::with_capacity(queries.len());
            let mut pf = Vec::with_capacity(queries.len());
            let mut pf_hits = 0;
            for k in &queries {
                let t = Instant::now();
                let d = registry.get("br-ported").unwrap();
                std::hint::black_box(d.get(k));
                ab.push(t.elapsed().as_nanos() as u64);
                let t = Instant::now();
                let d = registry.get("br-ported").unwrap();
                let v = std::hint::black_box(d.longest_prefix(k));
                pf.push(t.elapsed().as_nanos() as u64);
                pf_hits += v.is_some() as u32;
            }
            if round == 1 {
                lat(&format!("exact, rows of the file ({hits} hit)"), ex);
                lat("exact, random numbers (mostly absent)", ab);
                lat(
                    &format!("longest prefix, random numbers ({pf_hits} hit)"),
                    pf,
                );
            }
        }
        lat(
            "registry get + exact on the old version during the load",
            during,
        );
        registry.remove("br-ported");
        drop(ds);
        registry
            .put(
                "br-ported",
                "small",
                (0..1000u64).map(|i| (format!("1199{i:07}"), carrier(i))),
            )
            .unwrap();
    }
}
