//! Parser throughput (MB/s) over the real corpus in `../shared/peers`: smartctl text (nom),
//! smartctl JSON (serde), `ethtool -S`. Run with `cargo bench --bench parsers`.

use std::path::Path;
use std::time::{Duration, Instant};

fn corpus(dir: &Path, filter: impl Fn(&str) -> bool) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| filter(&p.file_name().unwrap_or_default().to_string_lossy()))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_default())
        .collect()
}

fn measure(name: &str, inputs: &[Vec<u8>], parse: impl Fn(&[u8]) -> usize) {
    let bytes: usize = inputs.iter().map(Vec::len).sum();
    let mut rounds = 0u32;
    let mut sink = 0usize;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        for input in inputs {
            sink = sink.wrapping_add(parse(input));
        }
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let mb = (bytes as f64 * f64::from(rounds)) / 1e6;
    println!(
        "{name:28} {:>4} files {:>8.1} KiB  {:>8.1} MB/s  ({rounds} rounds, checksum {sink})",
        inputs.len(),
        bytes as f64 / 1024.0,
        mb / secs
    );
}

fn main() {
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/peers");
    let text = corpus(&peers.join("smart-corpus/text"), |_| true);
    let json = corpus(&peers.join("smart-corpus/json"), |_| true);
    let ethtool = corpus(&peers.join("nic-corpus/ethtool"), |n| {
        n.ends_with("ethtool-S.txt")
    });
    measure("smartctl text (nom)", &text, |b| {
        oob::health::smart::parse("bench", b).map_or(0, |d| d.len())
    });
    measure("smartctl json (serde)", &json, |b| {
        oob::health::smart::parse("bench", b).map_or(0, |d| d.len())
    });
    measure("ethtool -S", &ethtool, |b| {
        oob::health::nic::parse_ethtool("bench", &String::from_utf8_lossy(b))
            .map_or(0, |s| s.raw.len())
    });
}
