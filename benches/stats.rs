//! The benches' one summary line: min, median and max of a measure.

/// Print `name` with the min, median and max of `v` (seconds).
pub fn stats(name: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        println!("{name:<44} no samples");
        return;
    }
    println!(
        "{name:<44} n={:<3} min {:>6.2} s  median {:>6.2} s  max {:>6.2} s",
        v.len(),
        v[0],
        v[v.len() / 2],
        v[v.len() - 1]
    );
}
