//! The text form of a law: what an operator writes in a config file, a C string or an
//! nginx directive, parsed into an [`Expr`] over named inputs.
//!
//! ```text
//! expr   = term   (("+" | "-") term)*
//! term   = unary  (("*" | "/") unary)*
//! unary  = "-" unary | atom
//! atom   = number | name | "(" expr ")" | func "(" expr ("," expr)? ")"
//! func   = min | max (two arguments), abs | tanh (one)
//! ```
//!
//! Bounded: at most [`MAX_LAW_LEN`] bytes and [`MAX_LAW_DEPTH`] levels of nesting, so
//! neither a long nor a deeply nested text can exhaust the stack.

use super::ast::{BinOp, Expr, UnOp};
use thiserror::Error;

/// Longest law text accepted, in bytes.
pub const MAX_LAW_LEN: usize = 1024;
/// Deepest nesting accepted (parentheses, unary minus and calls together).
pub const MAX_LAW_DEPTH: usize = 32;

/// Why a law text was refused; `at` is a byte offset into the text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The text is longer than [`MAX_LAW_LEN`].
    #[error("the law is {len} bytes long; at most {MAX_LAW_LEN} are accepted")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// Nesting deeper than [`MAX_LAW_DEPTH`].
    #[error("the law nests deeper than {MAX_LAW_DEPTH} levels at byte {at}")]
    TooDeep {
        /// Where.
        at: usize,
    },
    /// A name that is neither an input nor a function.
    #[error("unknown name '{name}' at byte {at}; the inputs are {known}")]
    UnknownName {
        /// The name.
        name: String,
        /// Where.
        at: usize,
        /// The inputs, comma-separated.
        known: String,
    },
    /// Something other than what the grammar allows here.
    #[error("expected {expected} at byte {at}, found {found}")]
    Unexpected {
        /// What would have been valid.
        expected: &'static str,
        /// What was there.
        found: String,
        /// Where.
        at: usize,
    },
}

/// Parses `text` into an expression whose `Input(i)` is `inputs[i]`.
pub fn parse_law(text: &str, inputs: &[&str]) -> Result<Expr, ParseError> {
    if text.len() > MAX_LAW_LEN {
        return Err(ParseError::TooLong { len: text.len() });
    }
    let mut p = Parser {
        s: text.as_bytes(),
        at: 0,
        depth: 0,
        inputs,
    };
    let e = p.expr()?;
    p.skip_ws();
    if p.at < p.s.len() {
        return Err(p.unexpected("an operator or the end"));
    }
    Ok(e)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
    depth: usize,
    inputs: &'a [&'a str],
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.at < self.s.len() && self.s[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn unexpected(&self, expected: &'static str) -> ParseError {
        let found = match self.s.get(self.at) {
            None => "the end".to_string(),
            Some(_) => {
                let rest = &self.s[self.at..self.s.len().min(self.at + 12)];
                format!("'{}'", String::from_utf8_lossy(rest))
            }
        };
        ParseError::Unexpected {
            expected,
            found,
            at: self.at,
        }
    }

    fn nest(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_LAW_DEPTH {
            return Err(ParseError::TooDeep { at: self.at });
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.term()?;
        loop {
            let op = if self.eat(b'+') {
                BinOp::Add
            } else if self.eat(b'-') {
                BinOp::Sub
            } else {
                return Ok(e);
            };
            e = Expr::Binary(op, Box::new(e), Box::new(self.term()?));
        }
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.unary()?;
        loop {
            let op = if self.eat(b'*') {
                BinOp::Mul
            } else if self.eat(b'/') {
                BinOp::Div
            } else {
                return Ok(e);
            };
            e = Expr::Binary(op, Box::new(e), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.eat(b'-') {
            self.nest()?;
            let a = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Unary(UnOp::Neg, Box::new(a)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Some(b'(') => {
                self.at += 1;
                self.nest()?;
                let e = self.expr()?;
                self.depth -= 1;
                if !self.eat(b')') {
                    return Err(self.unexpected("')'"));
                }
                Ok(e)
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => self.name(),
            _ => Err(self.unexpected("a number, an input, a function or '('")),
        }
    }

    fn number(&mut self) -> Result<Expr, ParseError> {
        let start = self.at;
        while self.at < self.s.len() {
            let c = self.s[self.at];
            let exp_sign = (c == b'+' || c == b'-')
                && self.at > start
                && matches!(self.s[self.at - 1], b'e' | b'E');
            if c.is_ascii_digit() || c == b'.' || c == b'e' || c == b'E' || exp_sign {
                self.at += 1;
            } else {
                break;
            }
        }
        // The slice holds ASCII digits, '.', 'e' and signs only, so it is valid UTF-8.
        let text = std::str::from_utf8(&self.s[start..self.at]).unwrap_or("");
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Expr::Const(v)),
            _ => {
                self.at = start;
                Err(self.unexpected("a finite number"))
            }
        }
    }

    fn name(&mut self) -> Result<Expr, ParseError> {
        let start = self.at;
        while self.at < self.s.len()
            && (self.s[self.at].is_ascii_alphanumeric() || self.s[self.at] == b'_')
        {
            self.at += 1;
        }
        let name = std::str::from_utf8(&self.s[start..self.at]).unwrap_or("");
        let call = |p: &mut Self, args: usize| -> Result<Vec<Expr>, ParseError> {
            if !p.eat(b'(') {
                return Err(p.unexpected("'(' after a function name"));
            }
            p.nest()?;
            let mut v = vec![p.expr()?];
            while v.len() < args {
                if !p.eat(b',') {
                    return Err(p.unexpected("','"));
                }
                v.push(p.expr()?);
            }
            p.depth -= 1;
            if !p.eat(b')') {
                return Err(p.unexpected("')'"));
            }
            Ok(v)
        };
        let two = |op: BinOp, mut v: Vec<Expr>| {
            let b = v.pop().unwrap_or(Expr::Const(0.0));
            let a = v.pop().unwrap_or(Expr::Const(0.0));
            Expr::Binary(op, Box::new(a), Box::new(b))
        };
        let one = |op: UnOp, mut v: Vec<Expr>| {
            Expr::Unary(op, Box::new(v.pop().unwrap_or(Expr::Const(0.0))))
        };
        match name {
            "min" => Ok(two(BinOp::Min, call(self, 2)?)),
            "max" => Ok(two(BinOp::Max, call(self, 2)?)),
            "abs" => Ok(one(UnOp::Abs, call(self, 1)?)),
            "tanh" => Ok(one(UnOp::Tanh, call(self, 1)?)),
            _ => match self.inputs.iter().position(|&n| n == name) {
                Some(i) if i <= u8::MAX as usize => Ok(Expr::Input(i as u8)),
                _ => Err(ParseError::UnknownName {
                    name: name.to_string(),
                    at: start,
                    known: self.inputs.join(", "),
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IN: [&str; 3] = ["q", "lat", "weight"];

    fn eval(text: &str, x: &[f64]) -> f64 {
        parse_law(text, &IN).unwrap().eval(x).unwrap()
    }

    #[test]
    fn precedence_and_associativity_follow_arithmetic() {
        let x = [2.0, 10.0, 3.0];
        assert_eq!(eval("1 + q * lat", &x), 21.0);
        assert_eq!(eval("(1 + q) * lat", &x), 30.0);
        assert_eq!(eval("lat - q - 1", &x), 7.0);
        assert_eq!(eval("lat / q / 5", &x), 1.0);
        assert_eq!(eval("-q * -lat", &x), 20.0);
        assert_eq!(eval("max(q, min(lat, weight)) + abs(-1.5e0)", &x), 4.5);
        assert_eq!(eval("weight / (lat * (1 + q))", &x), 0.1);
        assert_eq!(eval("2.5e-1 * 4", &x), 1.0);
    }

    #[test]
    fn bad_texts_say_what_and_where() {
        let e = parse_law("q + foo", &IN).unwrap_err();
        assert!(
            matches!(&e, ParseError::UnknownName { name, at: 4, .. } if name == "foo"),
            "{e}"
        );
        assert!(e.to_string().contains("q, lat, weight"), "{e}");
        for bad in [
            "",
            "q +",
            "(q",
            "q)",
            "min(q)",
            "max q",
            "1e999",
            "q $ 2",
            "abs(q, 1)",
        ] {
            assert!(parse_law(bad, &IN).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn long_and_deep_texts_are_refused_before_they_cost_anything() {
        let deep = format!("{}q{}", "(".repeat(100), ")".repeat(100));
        assert!(matches!(
            parse_law(&deep, &IN),
            Err(ParseError::TooDeep { .. })
        ));
        let negs = format!("{}q", "-".repeat(200));
        assert!(matches!(
            parse_law(&negs, &IN),
            Err(ParseError::TooDeep { .. })
        ));
        let long = "q + ".repeat(300) + "q";
        assert!(matches!(
            parse_law(&long, &IN),
            Err(ParseError::TooLong { .. })
        ));
        // Just inside both limits it parses.
        let ok = format!("{}q{}", "(".repeat(31), ")".repeat(31));
        assert!(parse_law(&ok, &IN).is_ok());
    }
}
