//! Arena ratings: Bradley–Terry strengths on the Elo scale with bootstrap intervals.

use std::collections::BTreeSet;

use api::eval::{Battle, Rating};

/// Virtual games each model plays, as one tie, against a fixed opponent rated 1000: a weak
/// prior that keeps a model that never lost (or never won) finite, and ties together groups of
/// models that never met.
pub const PRIOR_GAMES: f64 = 1.0;

/// Elo points per natural-log unit of strength (400 per factor of 10).
const ELO_PER_NAT: f64 = 400.0 / std::f64::consts::LN_10;

/// Bradley–Terry strengths on the Elo scale (400 points per factor of 10 in odds), shifted so
/// that their mean is 1000, one per model sorted by name. Maximum a posteriori with
/// [`PRIOR_GAMES`]; a tie counts as half a win each way (LMSYS duplicates each tie as one win
/// each way, the same up to a factor); a fractional score as that share of a win; a battle of a
/// model against itself is ignored. Newton's method with backtracking, until its step is below
/// 1e-10.
pub fn bradley_terry(battles: &[Battle]) -> Vec<(String, f64)> {
    let (models, games) = index(battles);
    let elo = fit(models.len(), &games);
    models.into_iter().zip(elo).collect()
}

/// Each model's rating, record and 95 % interval, best first: the interval is the 2.5th and
/// 97.5th percentiles (numpy's linear interpolation) of its rating over `rounds` resamples of
/// the battles with replacement, drawn with [`SplitMix64`] from `seed`. A model missing from a
/// resample rates 1000 there before the mean shift. With no rounds the interval is the rating.
pub fn ratings(battles: &[Battle], rounds: usize, seed: u64) -> Vec<Rating> {
    let (models, games) = index(battles);
    let elo = fit(models.len(), &games);
    let mut samples = vec![Vec::with_capacity(rounds); models.len()];
    let mut rng = SplitMix64::new(seed);
    let mut resample = Vec::with_capacity(games.len());
    for _ in 0..rounds {
        resample.clear();
        resample.extend((0..games.len()).map(|_| games[rng.below(games.len() as u64) as usize]));
        for (k, e) in fit(models.len(), &resample).into_iter().enumerate() {
            samples[k].push(e);
        }
    }
    let mut out: Vec<Rating> = models
        .into_iter()
        .enumerate()
        .map(|(k, model)| {
            let (mut wins, mut losses, mut ties) = (0, 0, 0);
            for &(i, j, s) in &games {
                let s = if i == k {
                    s
                } else if j == k {
                    1.0 - s
                } else {
                    continue;
                };
                if s > 0.5 {
                    wins += 1;
                } else if s < 0.5 {
                    losses += 1;
                } else {
                    ties += 1;
                }
            }
            let total = wins + losses + ties;
            let sample = &mut samples[k];
            sample.sort_by(f64::total_cmp);
            let (low, high) = if sample.is_empty() {
                (elo[k], elo[k])
            } else {
                (percentile(sample, 2.5), percentile(sample, 97.5))
            };
            Rating {
                model,
                elo: elo[k],
                low,
                high,
                wins,
                losses,
                ties,
                win_rate: if total == 0 {
                    0.0
                } else {
                    (wins as f64 + ties as f64 / 2.0) / total as f64
                },
            }
        })
        .collect();
    out.sort_by(|a, b| b.elo.total_cmp(&a.elo).then_with(|| a.model.cmp(&b.model)));
    out
}

/// SplitMix64 (Steele, Lea, Flood 2014): a ten-line generator whose stream the Python reference
/// reproduces exactly, so bootstrap intervals can be pinned to it.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (the high half of a 128-bit product, Lemire's multiply-shift).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// The models sorted by name, and each battle as (a, b, a's share of a win in 0–1).
fn index(battles: &[Battle]) -> (Vec<String>, Vec<(usize, usize, f64)>) {
    let kept: Vec<&Battle> = battles.iter().filter(|b| b.a != b.b).collect();
    let models: Vec<String> = kept
        .iter()
        .flat_map(|b| [&b.a, &b.b])
        .collect::<BTreeSet<_>>()
        .into_iter()
        .cloned()
        .collect();
    let at = |m: &String| models.binary_search(m).unwrap_or_default();
    let games = kept.iter().map(|b| (at(&b.a), at(&b.b), b.score.clamp(0.0, 1.0))).collect();
    (models, games)
}

/// MAP strengths θ (natural log of γ) of `n` models, returned as Elo with mean 1000.
fn fit(n: usize, games: &[(usize, usize, f64)]) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    // wins[i][j]: i's wins over j, a tie counting half.
    let mut wins = vec![vec![0.0; n]; n];
    for &(i, j, s) in games {
        wins[i][j] += s;
        wins[j][i] += 1.0 - s;
    }
    let objective = |t: &[f64]| {
        let mut v = 0.0;
        for i in 0..n {
            for j in 0..n {
                if wins[i][j] > 0.0 {
                    v += wins[i][j] * log_sigmoid(t[i] - t[j]);
                }
            }
            v += 0.5 * PRIOR_GAMES * (log_sigmoid(t[i]) + log_sigmoid(-t[i]));
        }
        v
    };
    let mut theta = vec![0.0; n];
    for _ in 0..100 {
        // The gradient g and the negated Hessian h of the log-posterior.
        let mut g = vec![0.0; n];
        let mut h = vec![vec![0.0; n]; n];
        for i in 0..n {
            let s0 = sigmoid(theta[i]);
            g[i] += PRIOR_GAMES * (0.5 - s0);
            h[i][i] += PRIOR_GAMES * s0 * (1.0 - s0);
            for j in 0..n {
                let games_ij = wins[i][j] + wins[j][i];
                if j == i || games_ij == 0.0 {
                    continue;
                }
                let p = sigmoid(theta[i] - theta[j]);
                g[i] += wins[i][j] - games_ij * p;
                h[i][i] += games_ij * p * (1.0 - p);
                h[i][j] -= games_ij * p * (1.0 - p);
            }
        }
        let step = solve_spd(h, &g);
        let f0 = objective(&theta);
        let slope: f64 = g.iter().zip(&step).map(|(a, b)| a * b).sum();
        let mut t = 1.0;
        let mut candidate;
        loop {
            candidate = theta.iter().zip(&step).map(|(a, b)| a + t * b).collect::<Vec<_>>();
            // Armijo, with a slack for rounding: near the optimum the gain is below one ulp.
            if objective(&candidate) >= f0 + 1e-4 * t * slope - 1e-12 * (1.0 + f0.abs())
                || t < 1e-10
            {
                break;
            }
            t *= 0.5;
        }
        theta = candidate;
        if step.iter().all(|x| x.abs() < 1e-10) {
            break;
        }
    }
    let elo: Vec<f64> = theta.iter().map(|x| ELO_PER_NAT * x).collect();
    let mean = elo.iter().sum::<f64>() / n as f64;
    elo.iter().map(|e| 1000.0 + e - mean).collect()
}

/// Solves `a x = b` for a symmetric positive definite `a` (Cholesky): the prior keeps the
/// negated Hessian positive definite.
fn solve_spd(mut a: Vec<Vec<f64>>, b: &[f64]) -> Vec<f64> {
    let n = b.len();
    for j in 0..n {
        let d = (a[j][j] - (0..j).map(|k| a[j][k] * a[j][k]).sum::<f64>()).sqrt();
        a[j][j] = d;
        for i in j + 1..n {
            a[i][j] = (a[i][j] - (0..j).map(|k| a[i][k] * a[j][k]).sum::<f64>()) / d;
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        y[i] = (b[i] - (0..i).map(|k| a[i][k] * y[k]).sum::<f64>()) / a[i][i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        x[i] = (y[i] - (i + 1..n).map(|k| a[k][i] * x[k]).sum::<f64>()) / a[i][i];
    }
    x
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 { 1.0 / (1.0 + (-x).exp()) } else { x.exp() / (1.0 + x.exp()) }
}

fn log_sigmoid(x: f64) -> f64 {
    if x >= 0.0 { -(-x).exp().ln_1p() } else { x - x.exp().ln_1p() }
}

/// numpy's default percentile of sorted values: linear between the two nearest ranks.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn battle(a: &str, b: &str, score: f64) -> Battle {
        Battle { a: a.into(), b: b.into(), score }
    }

    #[test]
    fn symmetric_and_anchored() {
        let elo =
            bradley_terry(&[battle("x", "y", 1.0), battle("y", "x", 1.0), battle("x", "y", 0.5)]);
        assert_eq!(elo.len(), 2);
        assert!((elo[0].1 - 1000.0).abs() < 1e-9 && (elo[1].1 - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn unbeaten_stays_finite() {
        let battles = vec![battle("a", "b", 1.0); 1000];
        let elo = bradley_terry(&battles);
        assert!(elo[0].1.is_finite() && elo[0].1 > elo[1].1);
        // 1000.5 wins to 0.5 against b, the prior's half win and half loss against 1000.
        assert!(elo[0].1 - elo[1].1 > 1000.0);
    }

    #[test]
    fn no_battles() {
        assert!(ratings(&[], 10, 1).is_empty());
        assert!(ratings(&[battle("a", "a", 1.0)], 10, 1).is_empty());
    }
}
