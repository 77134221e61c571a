//! The register machine: a compiler from [`Expr`] and a budgeted interpreter.

use super::ast::{BinOp, Expr, UnOp};
use super::VmError;

/// Registers in the fixed register file.
pub const REGISTERS: usize = 16;
/// Instructions a program may execute per evaluation.
pub const CYCLE_BUDGET: u32 = 500;

/// One instruction. Register operands are bytes; an index `>= REGISTERS` is an error at
/// run time, never an out-of-bounds access.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Instr {
    /// `r[dst] = consts[k]`
    Const {
        /// Destination register.
        dst: u8,
        /// Index into the constant pool.
        k: u16,
    },
    /// `r[dst] = inputs[input]`
    Load {
        /// Destination register.
        dst: u8,
        /// Input index.
        input: u8,
    },
    /// `r[dst] = op(r[a])`
    Un {
        /// Operator.
        op: UnOp,
        /// Destination register.
        dst: u8,
        /// Operand register.
        a: u8,
    },
    /// `r[dst] = op(r[a], r[b])`
    Bin {
        /// Operator.
        op: BinOp,
        /// Destination register.
        dst: u8,
        /// Left operand register.
        a: u8,
        /// Right operand register.
        b: u8,
    },
    /// `pc = target`
    Jmp {
        /// Instruction index to continue at.
        target: u16,
    },
    /// `if r[cond] != 0 { pc = target }`
    Jnz {
        /// Condition register.
        cond: u8,
        /// Instruction index to continue at.
        target: u16,
    },
    /// Stops and returns `r[src]`.
    Ret {
        /// Result register.
        src: u8,
    },
}

/// A compiled program: code and its constant pool. Built once, evaluated many times.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Program {
    code: Vec<Instr>,
    consts: Vec<f64>,
}

fn reg(r: usize) -> u8 {
    // Callers keep r < REGISTERS (checked in `compile`), so this never truncates.
    r as u8
}

/// Registers needed to evaluate `e` without spilling (the Sethi–Ullman number).
fn need(e: &Expr) -> usize {
    match e {
        Expr::Const(_) | Expr::Input(_) => 1,
        Expr::Unary(_, a) => need(a),
        Expr::Binary(_, a, b) => {
            let (x, y) = (need(a), need(b));
            if x == y {
                x + 1
            } else {
                x.max(y)
            }
        }
    }
}

impl Program {
    /// A program from raw instructions and constants (for hand-written programs and
    /// tests; nothing is validated until it runs, and every fault is a [`VmError`]).
    pub fn from_parts(code: Vec<Instr>, consts: Vec<f64>) -> Self {
        Program { code, consts }
    }

    /// Compiles an expression so that `r0` holds its value, allocating registers so the
    /// operand needing more of them is evaluated first.
    pub fn compile(e: &Expr) -> Result<Self, VmError> {
        let needed = need(e);
        if needed > REGISTERS {
            return Err(VmError::TooManyRegisters { needed });
        }
        let mut p = Program::default();
        p.emit(e, 0)?;
        p.code.push(Instr::Ret { src: 0 });
        if p.code.len() > CYCLE_BUDGET as usize {
            return Err(VmError::ProgramTooLong { len: p.code.len() });
        }
        Ok(p)
    }

    fn emit(&mut self, e: &Expr, base: usize) -> Result<(), VmError> {
        match e {
            Expr::Const(c) => {
                let k = self.consts.len();
                if k > u16::MAX as usize {
                    return Err(VmError::ProgramTooLong { len: k });
                }
                self.consts.push(*c);
                self.code.push(Instr::Const {
                    dst: reg(base),
                    k: k as u16,
                });
            }
            Expr::Input(i) => self.code.push(Instr::Load {
                dst: reg(base),
                input: *i,
            }),
            Expr::Unary(op, a) => {
                self.emit(a, base)?;
                self.code.push(Instr::Un {
                    op: *op,
                    dst: reg(base),
                    a: reg(base),
                });
            }
            Expr::Binary(op, a, b) => {
                let (ra, rb) = if need(a) >= need(b) {
                    self.emit(a, base)?;
                    self.emit(b, base + 1)?;
                    (base, base + 1)
                } else {
                    self.emit(b, base)?;
                    self.emit(a, base + 1)?;
                    (base + 1, base)
                };
                self.code.push(Instr::Bin {
                    op: *op,
                    dst: reg(base),
                    a: reg(ra),
                    b: reg(rb),
                });
            }
        }
        Ok(())
    }

    /// The instructions.
    pub fn code(&self) -> &[Instr] {
        &self.code
    }

    /// Runs the program on `inputs`. Uses a fixed register file on the stack and never
    /// touches the heap. At most [`CYCLE_BUDGET`] instructions execute; a program that
    /// needs more stops with [`VmError::BudgetExhausted`] after exactly that many.
    pub fn eval(&self, inputs: &[f64]) -> Result<f64, VmError> {
        let mut r = [0.0f64; REGISTERS];
        let mut pc: usize = 0;
        let mut cycles: u32 = 0;
        let get = |r: &[f64; REGISTERS], i: u8, pc: usize| {
            r.get(i as usize)
                .copied()
                .ok_or(VmError::BadRegister { pc, reg: i })
        };
        loop {
            if cycles >= CYCLE_BUDGET {
                return Err(VmError::BudgetExhausted { cycles });
            }
            let ins = *self.code.get(pc).ok_or(VmError::NoReturn { pc })?;
            cycles += 1;
            let mut next = pc + 1;
            match ins {
                Instr::Const { dst, k } => {
                    let v = *self
                        .consts
                        .get(k as usize)
                        .ok_or(VmError::BadConstant { pc, index: k })?;
                    *r.get_mut(dst as usize)
                        .ok_or(VmError::BadRegister { pc, reg: dst })? = v;
                }
                Instr::Load { dst, input } => {
                    let v = *inputs.get(input as usize).ok_or(VmError::BadInput {
                        pc,
                        index: input,
                        available: inputs.len(),
                    })?;
                    *r.get_mut(dst as usize)
                        .ok_or(VmError::BadRegister { pc, reg: dst })? = v;
                }
                Instr::Un { op, dst, a } => {
                    let v = op.apply(get(&r, a, pc)?);
                    *r.get_mut(dst as usize)
                        .ok_or(VmError::BadRegister { pc, reg: dst })? = v;
                }
                Instr::Bin { op, dst, a, b } => {
                    let (x, y) = (get(&r, a, pc)?, get(&r, b, pc)?);
                    let v = op.apply(x, y).ok_or(VmError::DivisionByZero { pc })?;
                    *r.get_mut(dst as usize)
                        .ok_or(VmError::BadRegister { pc, reg: dst })? = v;
                }
                Instr::Jmp { target } => next = target as usize,
                Instr::Jnz { cond, target } => {
                    if get(&r, cond, pc)? != 0.0 {
                        next = target as usize;
                    }
                }
                Instr::Ret { src } => return get(&r, src, pc),
            }
            pc = next;
        }
    }
}
