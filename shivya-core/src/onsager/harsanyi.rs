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
