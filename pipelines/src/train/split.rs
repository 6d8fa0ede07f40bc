//! Stratified, seeded splits: each class is shuffled on its own and cut in the
//! same proportions, so a rare positive class is present in every part.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Row indices of the parts, in the order of `fractions` (which should sum to 1;
/// the last part takes the remainder).
pub fn stratified(y: &[bool], fractions: &[f64], seed: u64) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut parts = vec![Vec::new(); fractions.len()];
    for class in [false, true] {
        let mut idx: Vec<usize> = (0..y.len()).filter(|&i| y[i] == class).collect();
        idx.shuffle(&mut rng);
        let mut start = 0;
        for (k, f) in fractions.iter().enumerate() {
            let end = if k + 1 == fractions.len() {
                idx.len()
            } else {
                (start + (f * idx.len() as f64).round() as usize).min(idx.len())
            };
            parts[k].extend_from_slice(&idx[start..end]);
            start = end;
        }
    }
    for p in &mut parts {
        p.sort_unstable();
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_every_row_once_and_keep_the_class_ratio() {
        let y: Vec<bool> = (0..1000).map(|i| i % 10 == 0).collect();
        let parts = stratified(&y, &[0.7, 0.15, 0.15], 7);
        let mut all: Vec<usize> = parts.concat();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        for p in &parts {
            let pos = p.iter().filter(|&&i| y[i]).count() as f64 / p.len() as f64;
            assert!((pos - 0.1).abs() < 0.01, "positive share {pos}");
        }
        assert_eq!(
            stratified(&y, &[0.5, 0.5], 7),
            stratified(&y, &[0.5, 0.5], 7)
        );
    }
}
