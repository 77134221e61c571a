//! Expression trees: the update laws L2 evolves, and a direct interpreter to check the VM.

use super::VmError;

/// A one-argument operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    /// `−a`
    Neg,
    /// `|a|`
    Abs,
    /// `tanh a`
    Tanh,
}

/// A two-argument operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `a + b`
    Add,
    /// `a − b`
    Sub,
    /// `a · b`
    Mul,
    /// `a / b`; dividing by zero is an error, not an infinity.
    Div,
    /// `min(a, b)`
    Min,
    /// `max(a, b)`
    Max,
}

impl UnOp {
    /// Applies the operator.
    pub fn apply(self, a: f64) -> f64 {
        match self {
            UnOp::Neg => -a,
            UnOp::Abs => a.abs(),
            UnOp::Tanh => a.tanh(),
        }
    }
}

impl BinOp {
    /// Applies the operator; `None` for division by zero.
    pub fn apply(self, a: f64, b: f64) -> Option<f64> {
        Some(match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => {
                if b == 0.0 {
                    return None;
                }
                a / b
            }
            BinOp::Min => a.min(b),
            BinOp::Max => a.max(b),
        })
    }
}

/// An expression over numbered inputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A constant.
    Const(f64),
    /// Input number `i`.
    Input(u8),
    /// A unary operation.
    Unary(UnOp, Box<Expr>),
    /// A binary operation.
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

impl Expr {
    /// Number of nodes in the tree.
    pub fn size(&self) -> usize {
        match self {
            Expr::Const(_) | Expr::Input(_) => 1,
            Expr::Unary(_, a) => 1 + a.size(),
            Expr::Binary(_, a, b) => 1 + a.size() + b.size(),
        }
    }

    /// Depth of the tree (a leaf has depth 1).
    pub fn depth(&self) -> usize {
        match self {
            Expr::Const(_) | Expr::Input(_) => 1,
            Expr::Unary(_, a) => 1 + a.depth(),
            Expr::Binary(_, a, b) => 1 + a.depth().max(b.depth()),
        }
    }

    /// Evaluates the tree directly, left operand first.
    pub fn eval(&self, inputs: &[f64]) -> Result<f64, VmError> {
        match self {
            Expr::Const(c) => Ok(*c),
            Expr::Input(i) => inputs.get(*i as usize).copied().ok_or(VmError::BadInput {
                pc: 0,
                index: *i,
                available: inputs.len(),
            }),
            Expr::Unary(op, a) => Ok(op.apply(a.eval(inputs)?)),
            Expr::Binary(op, a, b) => {
                let (x, y) = (a.eval(inputs)?, b.eval(inputs)?);
                op.apply(x, y).ok_or(VmError::DivisionByZero { pc: 0 })
            }
        }
    }
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expr::Const(c) => write!(f, "{c}"),
            Expr::Input(i) => write!(f, "x{i}"),
            Expr::Unary(op, a) => write!(f, "{}({a})", format!("{op:?}").to_lowercase()),
            Expr::Binary(op, a, b) => {
                let sym = match op {
                    BinOp::Add => "+",
                    BinOp::Sub => "-",
                    BinOp::Mul => "*",
                    BinOp::Div => "/",
                    BinOp::Min => "min",
                    BinOp::Max => "max",
                };
                match op {
                    BinOp::Min | BinOp::Max => write!(f, "{sym}({a}, {b})"),
                    _ => write!(f, "({a} {sym} {b})"),
                }
            }
        }
    }
}
