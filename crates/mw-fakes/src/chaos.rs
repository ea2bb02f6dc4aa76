//! Random fault injection for soak and fault-injection runs: a share of requests gets
//! a fault drawn from a list, from a seeded generator so that a run can be repeated.

/// Injects one of `faults` into each request with probability `rate`.
#[derive(Clone, Debug)]
pub struct Chaos<F> {
    rate: f64,
    faults: Vec<F>,
    state: u64,
    draws: u64,
    injected: u64,
}

impl<F: Clone> Chaos<F> {
    /// Faults for a `rate` share of requests (clamped to 0–1), chosen uniformly from
    /// `faults`, driven by `seed`. With no faults listed nothing is injected.
    pub fn new(rate: f64, faults: Vec<F>, seed: u64) -> Chaos<F> {
        Chaos {
            rate: if rate.is_finite() {
                rate.clamp(0.0, 1.0)
            } else {
                0.0
            },
            faults,
            state: seed,
            draws: 0,
            injected: 0,
        }
    }

    /// SplitMix64: small, fast, and good enough to pick faults.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The fault for the next request, if it gets one.
    pub fn draw(&mut self) -> Option<F> {
        self.draws += 1;
        let roll = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        if self.faults.is_empty() || roll >= self.rate {
            return None;
        }
        let index = usize::try_from(self.next() % self.faults.len() as u64).unwrap_or(0);
        self.injected += 1;
        self.faults.get(index).cloned()
    }

    /// Requests seen and faults injected so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.draws, self.injected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injects_close_to_the_rate_and_repeats_with_the_seed() {
        let mut first = Chaos::new(0.2, vec!['a', 'b', 'c'], 7);
        let picks: Vec<Option<char>> = (0..10_000).map(|_| first.draw()).collect();
        let (draws, injected) = first.counts();
        assert_eq!(draws, 10_000);
        assert!((1_800..2_200).contains(&injected), "{injected}");
        for fault in ['a', 'b', 'c'] {
            assert!(picks.iter().filter(|p| **p == Some(fault)).count() > 500);
        }
        let mut again = Chaos::new(0.2, vec!['a', 'b', 'c'], 7);
        let repeat: Vec<Option<char>> = (0..10_000).map(|_| again.draw()).collect();
        assert_eq!(picks, repeat);
        let mut none = Chaos::new(0.0, vec!['a'], 1);
        assert!((0..1000).all(|_| none.draw().is_none()));
        let mut empty: Chaos<char> = Chaos::new(1.0, vec![], 1);
        assert_eq!(empty.draw(), None);
    }
}
