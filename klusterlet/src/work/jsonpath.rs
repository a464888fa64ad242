//! The JSONPath subset that status feedback rules use, as kubectl writes it:
//! `.status.readyReplicas`, `{.status.conditions[?(@.type=="Ready")].status}`,
//! `.spec.containers[0].image`, `.items[*].metadata.name`, `.metadata.labels['app.kubernetes.io/name']`.
//!
//! Paths come from ManifestWorks, which the hub's users write, so the parser is total: every input
//! either parses or gets an error naming the offending position, with bounded length and depth.

use serde_json::Value;

/// Longest path accepted.
pub const MAX_PATH: usize = 1024;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
    Filter(Filter),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    path: Vec<String>,
    op: Option<(Op, Value)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, what: &str) -> String {
        format!("invalid JSONPath at character {}: {what}", self.i + 1)
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c == b' ') {
            self.i += 1;
        }
    }
    fn name(&mut self) -> Result<String, String> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        {
            self.i += 1;
        }
        if start == self.i {
            return Err(self.err("expected a field name"));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn quoted(&mut self) -> Result<String, String> {
        let q = self.peek().ok_or_else(|| self.err("unexpected end"))?;
        self.i += 1;
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == q {
                let out = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                return Ok(out);
            }
            self.i += 1;
        }
        Err(self.err("unterminated string"))
    }
    fn number(&mut self) -> Result<i64, String> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| self.err("expected a number"))
    }
    fn literal(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'"' | b'\'') => Ok(Value::String(self.quoted()?)),
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                if c == b'-' {
                    self.i += 1;
                }
                while self.peek().is_some_and(|c| c.is_ascii_digit() || c == b'.') {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                let n: f64 = text.parse().map_err(|_| self.err("bad number"))?;
                Ok(serde_json::Number::from_f64(n)
                    .map(Value::Number)
                    .unwrap_or(Value::Null))
            }
            _ => {
                let word = self.name()?;
                match word.as_str() {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    "null" => Ok(Value::Null),
                    _ => Err(self.err("expected a string, number, true, false or null")),
                }
            }
        }
    }
    fn filter(&mut self) -> Result<Filter, String> {
        // After "[?(".
        self.skip_ws();
        if !self.eat(b'@') {
            return Err(self.err("a filter must start with @"));
        }
        let mut path = Vec::new();
        while self.eat(b'.') {
            path.push(self.name()?);
        }
        self.skip_ws();
        let op = match (self.peek(), self.s.get(self.i + 1).copied()) {
            (Some(b'='), Some(b'=')) => Some(Op::Eq),
            (Some(b'!'), Some(b'=')) => Some(Op::Ne),
            (Some(b'<'), Some(b'=')) => Some(Op::Le),
            (Some(b'>'), Some(b'=')) => Some(Op::Ge),
            (Some(b'<'), _) => Some(Op::Lt),
            (Some(b'>'), _) => Some(Op::Gt),
            _ => None,
        };
        let op = match op {
            Some(op) => {
                self.i += if matches!(op, Op::Lt | Op::Gt) { 1 } else { 2 };
                self.skip_ws();
                Some((op, self.literal()?))
            }
            None => None,
        };
        self.skip_ws();
        if !(self.eat(b')') && self.eat(b']')) {
            return Err(self.err("expected )] to close the filter"));
        }
        Ok(Filter { path, op })
    }
}

impl JsonPath {
    /// Parses a path.
    pub fn parse(input: &str) -> Result<JsonPath, String> {
        if input.len() > MAX_PATH {
            return Err(format!(
                "invalid JSONPath: longer than {MAX_PATH} characters"
            ));
        }
        let mut text = input.trim();
        if let Some(inner) = text.strip_prefix('{') {
            text = inner
                .strip_suffix('}')
                .ok_or("invalid JSONPath: an opening { needs a closing }")?;
        }
        let text = text.strip_prefix('$').unwrap_or(text);
        if text.is_empty() {
            return Err("invalid JSONPath: the path is empty".into());
        }
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let mut steps = Vec::new();
        while let Some(c) = p.peek() {
            match c {
                b'.' => {
                    p.i += 1;
                    if p.eat(b'*') {
                        steps.push(Step::Wildcard);
                    } else if p.peek() != Some(b'[') {
                        steps.push(Step::Field(p.name()?));
                    }
                }
                b'[' => {
                    p.i += 1;
                    if p.eat(b'*') {
                        steps.push(Step::Wildcard);
                    } else if p.peek() == Some(b'?') {
                        p.i += 1;
                        if !p.eat(b'(') {
                            return Err(p.err("expected ( after ?"));
                        }
                        steps.push(Step::Filter(p.filter()?));
                        continue;
                    } else if matches!(p.peek(), Some(b'\'' | b'"')) {
                        steps.push(Step::Field(p.quoted()?));
                    } else {
                        steps.push(Step::Index(p.number()?));
                    }
                    if !p.eat(b']') {
                        return Err(p.err("expected ]"));
                    }
                }
                _ if steps.is_empty() => steps.push(Step::Field(p.name()?)),
                _ => return Err(p.err("expected . or [")),
            }
        }
        Ok(JsonPath { steps })
    }

    /// Every value the path selects in `root`, in document order.
    pub fn select<'v>(&self, root: &'v Value) -> Vec<&'v Value> {
        let mut current = vec![root];
        for step in &self.steps {
            let mut next = Vec::new();
            for v in current {
                match step {
                    Step::Field(f) => next.extend(v.get(f.as_str())),
                    Step::Index(i) => {
                        if let Some(a) = v.as_array() {
                            let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                            if idx >= 0 {
                                next.extend(a.get(idx as usize));
                            }
                        }
                    }
                    Step::Wildcard => match v {
                        Value::Array(a) => next.extend(a.iter()),
                        Value::Object(m) => next.extend(m.values()),
                        _ => {}
                    },
                    Step::Filter(f) => {
                        if let Some(a) = v.as_array() {
                            next.extend(a.iter().filter(|e| f.matches(e)));
                        }
                    }
                }
            }
            current = next;
        }
        current
    }
}

impl Filter {
    fn matches(&self, element: &Value) -> bool {
        let mut v = element;
        for f in &self.path {
            match v.get(f.as_str()) {
                Some(x) => v = x,
                None => return false,
            }
        }
        let Some((op, lit)) = &self.op else {
            return !v.is_null();
        };
        let ord = match (v, lit) {
            (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            (a, b) if a == b => Some(std::cmp::Ordering::Equal),
            _ => None,
        };
        use std::cmp::Ordering::*;
        match op {
            Op::Eq => ord == Some(Equal),
            Op::Ne => ord != Some(Equal),
            Op::Lt => ord == Some(Less),
            Op::Le => matches!(ord, Some(Less | Equal)),
            Op::Gt => ord == Some(Greater),
            Op::Ge => matches!(ord, Some(Greater | Equal)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Value {
        json!({
            "metadata": {"labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"containers": [{"name": "a", "image": "nginx:1"}, {"name": "b", "image": "redis:7"}]},
            "status": {"readyReplicas": 3, "conditions": [
                {"type": "Available", "status": "True"}, {"type": "Progressing", "status": "False"}]}
        })
    }

    fn sel(p: &str) -> Vec<Value> {
        JsonPath::parse(p)
            .unwrap()
            .select(&obj())
            .into_iter()
            .cloned()
            .collect()
    }

    #[test]
    fn kubectl_paths_select_what_kubectl_would() {
        assert_eq!(sel(".status.readyReplicas"), vec![json!(3)]);
        assert_eq!(sel("{.status.readyReplicas}"), vec![json!(3)]);
        assert_eq!(sel("$.status.readyReplicas"), vec![json!(3)]);
        assert_eq!(
            sel(r#".status.conditions[?(@.type=="Available")].status"#),
            vec![json!("True")]
        );
        assert_eq!(
            sel(".status.conditions[?(@.type != 'Available')].type"),
            vec![json!("Progressing")]
        );
        assert_eq!(sel(".spec.containers[1].image"), vec![json!("redis:7")]);
        assert_eq!(sel(".spec.containers[-1].name"), vec![json!("b")]);
        assert_eq!(
            sel(".spec.containers[*].name"),
            vec![json!("a"), json!("b")]
        );
        assert_eq!(
            sel(".metadata.labels['app.kubernetes.io/name']"),
            vec![json!("web")]
        );
        assert_eq!(sel(".status.conditions[?(@.reason)].type").len(), 0);
        assert!(sel(".status.missing").is_empty());
        assert!(sel(".spec.containers[9]").is_empty());
    }

    #[test]
    fn malformed_paths_are_errors_naming_the_position() {
        for bad in [
            "",
            "{.status",
            ".status.[",
            ".status[abc]",
            ".a[?(@.x==)]",
            ".a[?(x==1)]",
            ".a['unterminated",
            ".a[?(@.b==1",
            "..",
            ".a b",
        ] {
            let e = JsonPath::parse(bad).unwrap_err();
            assert!(e.starts_with("invalid JSONPath"), "{bad}: {e}");
        }
        assert!(JsonPath::parse(&".a".repeat(600)).is_err());
    }
}
