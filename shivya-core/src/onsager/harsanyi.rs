//! Harsanyi dividends of coalition games with at most 8 players (`u8` coalition masks).

/// Players a coalition mask can hold.
pub const MAX_PLAYERS: usize = 8;

/// Turns a table of coalition values `v[S]` (indexed by `u8` mask, length `2^k`) into
/// Harsanyi dividends in place: `d(S) = Σ_{T ⊆ S} (−1)^{|S|−|T|} v(T)`.
///
/// Uses the fast Möbius transform, `k · 2^(k−1)` subtractions in a fixed order. `table`
/// must have length `2^k` for some `k <= 8`; other lengths are left untouched and `false`
/// is returned.
pub fn dividends_in_place(table: &mut [f64]) -> bool {
    let len = table.len();
    if !len.is_power_of_two() || len > 1 << MAX_PLAYERS {
        return false;
    }
    let mut bit = 1;
    while bit < len {
        for mask in 0..len {
            if mask & bit != 0 {
                table[mask] -= table[mask ^ bit];
            }
        }
        bit <<= 1;
    }
    true
}

/// The Shapley value of player `p` from a dividend table: `Σ_{S ∋ p} d(S) / |S|`.
pub fn shapley_from_dividends(dividends: &[f64], p: usize) -> f64 {
    let mut acc = 0.0;
    for (mask, d) in dividends.iter().enumerate() {
        if mask & (1 << p) != 0 {
            acc += d / mask.count_ones() as f64;
        }
    }
    acc
}

/// Player 0's share in the local coalition game of `k ≤ 8` players (player 0 is the agent
/// itself, the others its neighbours): `v(S) = W(S) · exp(−D(S)/T)`, where `W(S)` sums the
/// couplings `weight(a, b)` inside `S` and `D(S)` is the mean squared distance of the
/// members' belief means from their centroid. Returns the Shapley value `φ_0`.
///
/// `table` needs `2^k` entries and `centroid` `dim` entries; both are scratch. Every sum
/// runs in mask and member order, so equal inputs give bit-identical results.
pub fn coalition_share<'a, M, W>(
    k: usize,
    dim: usize,
    mean: M,
    weight: W,
    temperature: f64,
    table: &mut [f64],
    centroid: &mut [f64],
) -> f64
where
    M: Fn(usize) -> &'a [f64],
    W: Fn(usize, usize) -> f64,
{
    let k = k.min(MAX_PLAYERS);
    let size = 1usize << k;
    if table.len() < size || centroid.len() < dim {
        return 0.0;
    }
    let centroid = &mut centroid[..dim];
    for mask in 0..size {
        let mut w_in = 0.0;
        let mut count = 0.0;
        centroid.fill(0.0);
        for a in 0..k {
            if mask & (1 << a) == 0 {
                continue;
            }
            for (c, x) in centroid.iter_mut().zip(mean(a)) {
                *c += x;
            }
            count += 1.0;
            for b in a + 1..k {
                if mask & (1 << b) != 0 {
                    w_in += weight(a, b);
                }
            }
        }
        if count < 2.0 {
            table[mask] = 0.0;
            continue;
        }
        centroid.iter_mut().for_each(|c| *c /= count);
        let mut disp = 0.0;
        for a in 0..k {
            if mask & (1 << a) != 0 {
                for (c, x) in centroid.iter().zip(mean(a)) {
                    disp += (x - c) * (x - c);
                }
            }
        }
        table[mask] = w_in * (-(disp / count) / temperature).exp();
    }
    dividends_in_place(&mut table[..size]);
    shapley_from_dividends(&table[..size], 0)
}
