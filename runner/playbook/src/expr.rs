//! Conditions (`when`, `changed_when`, `failed_when`, `assert: that`): the subset of Jinja
//! expressions Ansible users write, parsed and evaluated here, so a playbook in that subset
//! means the same under `ansible-playbook` and `rookery play`.
//!
//! Supported: `==` `!=` `<` `>` `<=` `>=`, `and` `or` `not`, `in` / `not in`,
//! `is [not] defined|undefined|none|failed|succeeded|success|changed|skipped`, bare
//! variables and booleans, string / number / list literals, parentheses, attribute access
//! `a.b`, `a['b']`, `a[0]`. Anything else (filters `|`, arithmetic, calls, `{{ }}`) is an error
//! that names the construct — never a silent misreading.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    #[error("in `{expr}`: {construct} is not supported in conditions; {hint}")]
    Unsupported {
        expr: String,
        construct: String,
        hint: String,
    },
    #[error("in `{expr}`: {detail}")]
    Syntax { expr: String, detail: String },
    #[error("in `{expr}`: undefined variable `{variable}`")]
    Undefined { expr: String, variable: String },
    #[error("in `{expr}`: {detail}")]
    Type { expr: String, detail: String },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64, bool),
    LParen,
    RParen,
    LBrack,
    RBrack,
    Comma,
    Dot,
    Op(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Lit(Value),
    List(Vec<Expr>),
    /// Root variable name and accessors.
    Var(String, Vec<Access>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(&'static str, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Box<Expr>, bool),
    Test(Box<Expr>, String, bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    Key(String),
    Index(Box<Expr>),
}

const TESTS: &[&str] = &[
    "defined",
    "undefined",
    "none",
    "failed",
    "succeeded",
    "success",
    "changed",
    "skipped",
];

fn tokenize(src: &str) -> Result<Vec<Tok>, ExprError> {
    let unsupported = |construct: String, hint: &str| ExprError::Unsupported {
        expr: src.to_string(),
        construct,
        hint: hint.to_string(),
    };
    if src.contains("{{") || src.contains("{%") {
        return Err(unsupported(
            "template markup `{{ }}`".into(),
            "conditions are bare expressions: write `when: x == 1`, not `when: \"{{ x == 1 }}\"`",
        ));
    }
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                // `name(` is a call; a bare `(` groups.
                if matches!(out.last(), Some(Tok::Ident(n)) if !is_keyword(n)) {
                    let name = match out.last() {
                        Some(Tok::Ident(n)) => n.clone(),
                        _ => String::new(),
                    };
                    return Err(unsupported(
                        format!("the call `{name}(...)`"),
                        "function and method calls are Jinja; compare values instead",
                    ));
                }
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            '[' => {
                out.push(Tok::LBrack);
                i += 1;
            }
            ']' => {
                out.push(Tok::RBrack);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '.' if !chars.get(i + 1).is_some_and(char::is_ascii_digit)
                || matches!(out.last(), Some(Tok::Ident(_)) | Some(Tok::RBrack)) =>
            {
                out.push(Tok::Dot);
                i += 1;
            }
            '|' => {
                let rest: String = chars[i + 1..].iter().collect();
                let name: String = rest
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                return Err(unsupported(
                    format!("the Jinja filter `| {name}`"),
                    "compare plain values (e.g. `x is defined and x != ''` instead of `x | default('')`), or compute the value with set_fact",
                ));
            }
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let op = match (c, next) {
                    ('=', Some('=')) => "==",
                    ('!', Some('=')) => "!=",
                    ('<', Some('=')) => "<=",
                    ('>', Some('=')) => ">=",
                    ('<', _) => "<",
                    ('>', _) => ">",
                    _ => {
                        return Err(ExprError::Syntax {
                            expr: src.into(),
                            detail: format!(
                                "unexpected `{c}` (use `==` to compare, `not` to negate)"
                            ),
                        });
                    }
                };
                out.push(Tok::Op(op));
                i += op.len();
            }
            '\'' | '"' => {
                let q = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(ExprError::Syntax {
                                expr: src.into(),
                                detail: "unterminated string".into(),
                            });
                        }
                        Some(&ch) if ch == q => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            if let Some(&n) = chars.get(i + 1) {
                                s.push(n);
                            }
                            i += 2;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_ascii_digit()
                || (c == '-'
                    && chars.get(i + 1).is_some_and(char::is_ascii_digit)
                    && !matches!(
                        out.last(),
                        Some(
                            Tok::Ident(_) | Tok::Num(..) | Tok::Str(_) | Tok::RParen | Tok::RBrack
                        )
                    ))
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n: f64 = text.parse().map_err(|_| ExprError::Syntax {
                    expr: src.into(),
                    detail: format!("bad number `{text}`"),
                })?;
                out.push(Tok::Num(n, !text.contains('.')));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => {
                let (construct, hint) = match other {
                    '+' | '-' | '*' | '/' | '%' => (
                        format!("the arithmetic operator `{other}`"),
                        "compute the value with set_fact or in vars",
                    ),
                    '~' => (
                        "string concatenation `~`".to_string(),
                        "compare the parts separately",
                    ),
                    _ => (
                        format!("the character `{other}`"),
                        "see the supported operators",
                    ),
                };
                return Err(unsupported(construct, hint));
            }
        }
    }
    Ok(out)
}

fn is_keyword(s: &str) -> bool {
    matches!(s, "and" | "or" | "not" | "in" | "is")
}

struct P<'a> {
    toks: Vec<Tok>,
    pos: usize,
    src: &'a str,
}

/// Parse a condition.
pub fn parse(src: &str) -> Result<Expr, ExprError> {
    let toks = tokenize(src)?;
    if toks.is_empty() {
        return Err(ExprError::Syntax {
            expr: src.into(),
            detail: "empty condition".into(),
        });
    }
    let mut p = P { toks, pos: 0, src };
    let e = p.or()?;
    if p.pos < p.toks.len() {
        return Err(p.err(format!("unexpected {}", describe(&p.toks[p.pos]))));
    }
    Ok(e)
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Str(s) => format!("string '{s}'"),
        Tok::Num(n, _) => format!("number {n}"),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::LBrack => "`[`".into(),
        Tok::RBrack => "`]`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Dot => "`.`".into(),
        Tok::Op(o) => format!("`{o}`"),
    }
}

impl P<'_> {
    fn err(&self, detail: String) -> ExprError {
        ExprError::Syntax {
            expr: self.src.into(),
            detail,
        }
    }
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn peek_ident(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s == kw)
    }
    fn peek_ident_at(&self, off: usize, kw: &str) -> bool {
        matches!(self.toks.get(self.pos + off), Some(Tok::Ident(s)) if s == kw)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn expect(&mut self, t: Tok) -> Result<(), ExprError> {
        match self.next() {
            Some(x) if x == t => Ok(()),
            Some(x) => Err(self.err(format!("expected {}, found {}", describe(&t), describe(&x)))),
            None => Err(self.err(format!("expected {} at the end", describe(&t)))),
        }
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut l = self.and()?;
        while self.peek_ident("or") {
            self.pos += 1;
            let r = self.and()?;
            l = Expr::Or(Box::new(l), Box::new(r));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut l = self.not()?;
        while self.peek_ident("and") {
            self.pos += 1;
            let r = self.not()?;
            l = Expr::And(Box::new(l), Box::new(r));
        }
        Ok(l)
    }
    fn not(&mut self) -> Result<Expr, ExprError> {
        if self.peek_ident("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Result<Expr, ExprError> {
        let l = self.primary()?;
        match self.peek().cloned() {
            Some(Tok::Op(op)) => {
                self.pos += 1;
                let r = self.primary()?;
                Ok(Expr::Cmp(op, Box::new(l), Box::new(r)))
            }
            Some(Tok::Ident(k)) if k == "in" => {
                self.pos += 1;
                let r = self.primary()?;
                Ok(Expr::In(Box::new(l), Box::new(r), false))
            }
            Some(Tok::Ident(k)) if k == "not" && self.peek_ident_at(1, "in") => {
                self.pos += 2;
                let r = self.primary()?;
                Ok(Expr::In(Box::new(l), Box::new(r), true))
            }
            Some(Tok::Ident(k)) if k == "is" => {
                self.pos += 1;
                let negate = if self.peek_ident("not") {
                    self.pos += 1;
                    true
                } else {
                    false
                };
                match self.next() {
                    Some(Tok::Ident(t)) if TESTS.contains(&t.as_str()) => {
                        Ok(Expr::Test(Box::new(l), t, negate))
                    }
                    Some(Tok::Ident(t)) => Err(ExprError::Unsupported {
                        expr: self.src.into(),
                        construct: format!("the test `is {t}`"),
                        hint: format!("supported tests: {}", TESTS.join(", ")),
                    }),
                    _ => Err(self.err("expected a test name after `is`".into())),
                }
            }
            _ => Ok(l),
        }
    }
    fn primary(&mut self) -> Result<Expr, ExprError> {
        match self.next() {
            Some(Tok::LParen) => {
                let e = self.or()?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            Some(Tok::LBrack) => {
                let mut items = Vec::new();
                if matches!(self.peek(), Some(Tok::RBrack)) {
                    self.pos += 1;
                    return Ok(Expr::List(items));
                }
                loop {
                    items.push(self.or()?);
                    match self.next() {
                        Some(Tok::Comma) => {
                            if matches!(self.peek(), Some(Tok::RBrack)) {
                                self.pos += 1;
                                break;
                            }
                        }
                        Some(Tok::RBrack) => break,
                        _ => return Err(self.err("expected `,` or `]` in list".into())),
                    }
                }
                Ok(Expr::List(items))
            }
            Some(Tok::Str(s)) => Ok(Expr::Lit(Value::String(s))),
            Some(Tok::Num(n, int)) => Ok(Expr::Lit(num_value(n, int))),
            Some(Tok::Ident(id)) => match id.as_str() {
                "true" | "True" => Ok(Expr::Lit(Value::Bool(true))),
                "false" | "False" => Ok(Expr::Lit(Value::Bool(false))),
                "none" | "None" | "null" => Ok(Expr::Lit(Value::Null)),
                k if is_keyword(k) => Err(self.err(format!("unexpected `{k}`"))),
                _ => {
                    let mut acc = Vec::new();
                    loop {
                        match self.peek() {
                            Some(Tok::Dot) => {
                                self.pos += 1;
                                match self.next() {
                                    Some(Tok::Ident(k)) => acc.push(Access::Key(k)),
                                    Some(Tok::Num(n, true)) => acc.push(Access::Index(Box::new(
                                        Expr::Lit(num_value(n, true)),
                                    ))),
                                    _ => return Err(self.err("expected a name after `.`".into())),
                                }
                            }
                            Some(Tok::LBrack) => {
                                self.pos += 1;
                                let e = self.or()?;
                                self.expect(Tok::RBrack)?;
                                acc.push(Access::Index(Box::new(e)));
                            }
                            _ => break,
                        }
                    }
                    Ok(Expr::Var(id, acc))
                }
            },
            Some(t) => Err(self.err(format!("unexpected {}", describe(&t)))),
            None => Err(self.err("unexpected end of condition".into())),
        }
    }
}

fn num_value(n: f64, int: bool) -> Value {
    #[allow(clippy::cast_possible_truncation)]
    if int && n.abs() < 9.0e15 {
        return Value::from(n as i64);
    }
    serde_json::Number::from_f64(n)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Evaluation result: a value, or "undefined" with the path that was missing.
enum V {
    Val(Value),
    Undef(String),
}

/// Parse and evaluate `src` against `vars`.
pub fn eval_condition(src: &str, vars: &Value) -> Result<bool, ExprError> {
    let e = parse(src)?;
    eval_bool(&e, vars, src)
}

fn eval_bool(e: &Expr, vars: &Value, src: &str) -> Result<bool, ExprError> {
    match eval(e, vars, src)? {
        V::Val(v) => Ok(truthy(&v)),
        V::Undef(p) => Err(ExprError::Undefined {
            expr: src.into(),
            variable: p,
        }),
    }
}

/// Ansible's truthiness, including the strings `yes`/`no`/`true`/`false` a bare variable
/// may hold.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => match crate::language::parse_bool_word(s) {
            Some(b) => b,
            None => !s.is_empty(),
        },
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn defined(v: V, src: &str) -> Result<Value, ExprError> {
    match v {
        V::Val(v) => Ok(v),
        V::Undef(p) => Err(ExprError::Undefined {
            expr: src.into(),
            variable: p,
        }),
    }
}

fn eval(e: &Expr, vars: &Value, src: &str) -> Result<V, ExprError> {
    Ok(match e {
        Expr::Lit(v) => V::Val(v.clone()),
        Expr::List(items) => V::Val(Value::Array(
            items
                .iter()
                .map(|i| eval(i, vars, src).and_then(|v| defined(v, src)))
                .collect::<Result<_, _>>()?,
        )),
        Expr::Var(root, acc) => {
            let mut path = root.clone();
            let Some(mut cur) = vars.get(root).cloned() else {
                return Ok(V::Undef(path));
            };
            for a in acc {
                let key = match a {
                    Access::Key(k) => Value::String(k.clone()),
                    Access::Index(ix) => defined(eval(ix, vars, src)?, src)?,
                };
                let next = match (&cur, &key) {
                    (Value::Object(m), Value::String(k)) => m.get(k).cloned(),
                    (Value::Array(a), Value::Number(n)) => n
                        .as_i64()
                        .and_then(|i| {
                            if i < 0 {
                                usize::try_from(-i)
                                    .ok()
                                    .and_then(|b| a.len().checked_sub(b))
                            } else {
                                usize::try_from(i).ok()
                            }
                        })
                        .and_then(|i| a.get(i).cloned()),
                    _ => None,
                };
                match &key {
                    Value::String(k) => path.push_str(&format!(".{k}")),
                    other => path.push_str(&format!("[{other}]")),
                }
                match next {
                    Some(v) => cur = v,
                    None => return Ok(V::Undef(path)),
                }
            }
            V::Val(cur)
        }
        Expr::Not(x) => V::Val(Value::Bool(!eval_bool(x, vars, src)?)),
        Expr::And(a, b) => V::Val(Value::Bool(
            eval_bool(a, vars, src)? && eval_bool(b, vars, src)?,
        )),
        Expr::Or(a, b) => V::Val(Value::Bool(
            eval_bool(a, vars, src)? || eval_bool(b, vars, src)?,
        )),
        Expr::Test(x, t, neg) => {
            let v = eval(x, vars, src)?;
            let r = match t.as_str() {
                "defined" => matches!(v, V::Val(_)),
                "undefined" => matches!(v, V::Undef(_)),
                "none" => matches!(defined(v, src)?, Value::Null),
                other => {
                    let v = defined(v, src)?;
                    let flag = |k: &str| v.get(k).is_some_and(truthy);
                    match other {
                        "failed" => flag("failed"),
                        "succeeded" | "success" => !flag("failed"),
                        "changed" => flag("changed"),
                        "skipped" => flag("skipped"),
                        _ => false,
                    }
                }
            };
            V::Val(Value::Bool(r != *neg))
        }
        Expr::In(x, coll, neg) => {
            let x = defined(eval(x, vars, src)?, src)?;
            let c = defined(eval(coll, vars, src)?, src)?;
            let r = match &c {
                Value::Array(a) => a.iter().any(|i| values_equal(i, &x)),
                Value::Object(m) => x.as_str().is_some_and(|k| m.contains_key(k)),
                Value::String(s) => match &x {
                    Value::String(sub) => s.contains(sub.as_str()),
                    _ => false,
                },
                other => {
                    return Err(ExprError::Type {
                        expr: src.into(),
                        detail: format!("`in` needs a list, mapping or string, found {other}"),
                    });
                }
            };
            V::Val(Value::Bool(r != *neg))
        }
        Expr::Cmp(op, a, b) => {
            let a = defined(eval(a, vars, src)?, src)?;
            let b = defined(eval(b, vars, src)?, src)?;
            let r = match *op {
                "==" => values_equal(&a, &b),
                "!=" => !values_equal(&a, &b),
                _ => {
                    let ord = match (&a, &b) {
                        (Value::Number(x), Value::Number(y)) => x
                            .as_f64()
                            .zip(y.as_f64())
                            .and_then(|(x, y)| x.partial_cmp(&y)),
                        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
                        _ => None,
                    };
                    let Some(ord) = ord else {
                        return Err(ExprError::Type {
                            expr: src.into(),
                            detail: format!("cannot order {a} and {b} with `{op}`"),
                        });
                    };
                    match *op {
                        "<" => ord.is_lt(),
                        ">" => ord.is_gt(),
                        "<=" => ord.is_le(),
                        _ => ord.is_ge(),
                    }
                }
            };
            V::Val(Value::Bool(r))
        }
    })
}

/// Numbers compare by value (1 == 1.0); everything else structurally.
fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(s: &str) -> Result<bool, ExprError> {
        let vars = json!({
            "a": 1, "s": "x", "l": [1, 2, "three"], "m": {"k": {"z": true}},
            "flag": "yes", "off": false, "r": {"rc": 0, "changed": true, "stdout": "hello world"}
        });
        eval_condition(s, &vars)
    }

    #[test]
    fn supported_subset() {
        assert!(ev("a == 1").unwrap());
        assert!(ev("a != 2 and s == 'x'").unwrap());
        assert!(ev("a < 2 and a >= 1 and not a > 1").unwrap());
        assert!(ev("'three' in l and 4 not in l").unwrap());
        assert!(ev("m.k.z and m['k']['z'] and l[0] == 1 and l[-1] == 'three'").unwrap());
        assert!(ev("nope is not defined and a is defined").unwrap());
        assert!(ev("flag").unwrap());
        assert!(!ev("off").unwrap());
        assert!(ev("(off or a == 1) and true").unwrap());
        assert!(ev("r is changed and r is not failed and r.rc == 0").unwrap());
        assert!(ev("'world' in r.stdout").unwrap());
        assert!(ev("a in [1, 2]").unwrap());
        assert!(ev("m.k.missing is undefined").unwrap());
        assert!(ev("True").unwrap());
    }

    #[test]
    fn errors_name_the_construct() {
        let e = ev("x | default(1)").unwrap_err().to_string();
        assert!(e.contains("filter `| default`"), "{e}");
        let e = ev("s.startswith('x')").unwrap_err().to_string();
        assert!(e.contains("call"), "{e}");
        let e = ev("a + 1 == 2").unwrap_err().to_string();
        assert!(e.contains("arithmetic"), "{e}");
        let e = ev("a is match('x')").unwrap_err().to_string();
        assert!(e.contains("is match"), "{e}");
        let e = ev("{{ a }}").unwrap_err().to_string();
        assert!(e.contains("bare expressions"), "{e}");
        let e = ev("nope == 1").unwrap_err();
        assert_eq!(
            e,
            ExprError::Undefined {
                expr: "nope == 1".into(),
                variable: "nope".into()
            }
        );
        assert!(ev("a = 1").is_err());
        assert!(ev("s < 1").is_err());
    }
}
