//! Compressed sparse row matrices: just what the Hodge operators need.

/// A CSR matrix of `f64`. Columns within a row are ascending, so products have a fixed
/// summation order and are bit-reproducible.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    rows: usize,
    cols: usize,
    row_ptr: Vec<usize>,
    col_idx: Vec<u32>,
    vals: Vec<f64>,
}

impl Csr {
    /// Builds a matrix from rows given as `(column, value)` lists already sorted by column.
    pub(crate) fn from_sorted_rows<I, R>(cols: usize, rows: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: IntoIterator<Item = (u32, f64)>,
    {
        let mut row_ptr = vec![0];
        let mut col_idx = Vec::new();
        let mut vals = Vec::new();
        for row in rows {
            for (c, v) in row {
                col_idx.push(c);
                vals.push(v);
            }
            row_ptr.push(col_idx.len());
        }
        Csr {
            rows: row_ptr.len() - 1,
            cols,
            row_ptr,
            col_idx,
            vals,
        }
    }

    /// The transpose, with ascending columns in every row.
    pub fn transpose(&self) -> Csr {
        let mut counts = vec![0usize; self.cols + 1];
        for &c in &self.col_idx {
            counts[c as usize + 1] += 1;
        }
        for i in 0..self.cols {
            counts[i + 1] += counts[i];
        }
        let row_ptr = counts.clone();
        let mut next = counts;
        let mut col_idx = vec![0u32; self.col_idx.len()];
        let mut vals = vec![0.0; self.vals.len()];
        // Walking rows in ascending order fills each transposed row in ascending order.
        for r in 0..self.rows {
            for k in self.row_ptr[r]..self.row_ptr[r + 1] {
                let c = self.col_idx[k] as usize;
                let dst = next[c];
                col_idx[dst] = r as u32;
                vals[dst] = self.vals[k];
                next[c] += 1;
            }
        }
        Csr {
            rows: self.cols,
            cols: self.rows,
            row_ptr,
            col_idx,
            vals,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.vals.len()
    }

    /// Row start offsets into [`col_idx`](Self::col_idx) and [`values`](Self::values)
    /// (`rows() + 1` entries).
    pub fn row_ptr(&self) -> &[usize] {
        &self.row_ptr
    }

    /// Column of every stored entry, ascending within a row.
    pub fn col_idx(&self) -> &[u32] {
        &self.col_idx
    }

    /// Value of every stored entry.
    pub fn values(&self) -> &[f64] {
        &self.vals
    }

    /// Entries of row `r` as `(column, value)` pairs.
    pub fn row(&self, r: usize) -> impl Iterator<Item = (u32, f64)> + '_ {
        let (a, b) = (self.row_ptr[r], self.row_ptr[r + 1]);
        self.col_idx[a..b]
            .iter()
            .copied()
            .zip(self.vals[a..b].iter().copied())
    }

    /// `y = A x`. Panics never: callers pass slices sized by the complex (checked once at
    /// the public entry points); a short slice would be a bug in this module.
    pub fn mul_vec(&self, x: &[f64], y: &mut [f64]) {
        debug_assert_eq!(x.len(), self.cols);
        debug_assert_eq!(y.len(), self.rows);
        for (r, out) in y.iter_mut().enumerate().take(self.rows) {
            let (a, b) = (self.row_ptr[r], self.row_ptr[r + 1]);
            let mut acc = 0.0;
            for k in a..b {
                acc += self.vals[k] * x[self.col_idx[k] as usize];
            }
            *out = acc;
        }
    }

    /// The diagonal (zero where no entry is stored).
    pub fn diagonal(&self) -> Vec<f64> {
        let n = self.rows.min(self.cols);
        let mut d = vec![0.0; n];
        for (r, slot) in d.iter_mut().enumerate() {
            for (c, v) in self.row(r) {
                if c as usize == r {
                    *slot = v;
                }
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_twice_is_identity_and_products_agree() {
        let a = Csr::from_sorted_rows(3, vec![vec![(0, 1.0), (2, -2.0)], vec![(1, 3.0)], vec![]]);
        assert_eq!(a.transpose().transpose(), a);
        let x = [1.0, 2.0, 3.0];
        let mut y = [0.0; 3];
        a.mul_vec(&x, &mut y);
        assert_eq!(y, [-5.0, 6.0, 0.0]);
        let at = a.transpose();
        let mut z = [0.0; 3];
        at.mul_vec(&[1.0, 1.0, 1.0], &mut z);
        assert_eq!(z, [1.0, 3.0, -2.0]);
    }
}
