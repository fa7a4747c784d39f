//! Templates: handlebars in strict mode with HTML escaping off (what jetporch does), plus the
//! few helpers playbooks need. Ansible's plain `{{ var }}` and `{{ a.b }}` spellings mean the
//! same here; Jinja-only syntax (filters `|`, `{% %}`, `x['k']`, calls) is caught before
//! handlebars sees it and explained, because handlebars would either reject it with a
//! confusing message or — worse — read it differently.
//!
//! Helpers: `{{default x "fallback"}}`, `{{to_json x}}`, `{{to_yaml x}}`,
//! `{{join list ", "}}`, `{{to_bytes "10Gi"}}` (binary and decimal suffixes → bytes).
//!
//! A string that is exactly one `{{ path }}` keeps the value's type (a list stays a list), so
//! `loop: "{{ disks }}"` and `port: "{{ port }}"` work as in Ansible.

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason,
};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("undefined variable `{variable}`")]
    Undefined { variable: String },
    #[error("{construct} is Jinja syntax, which rookery templates do not support; {hint}")]
    Jinja { construct: String, hint: String },
    #[error("bad template: {detail}")]
    Syntax { detail: String },
    #[error("{detail}")]
    Render { detail: String },
}

/// The template engine shared by a run.
pub struct Templar {
    hb: Handlebars<'static>,
}

impl Default for Templar {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Templar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templar")
    }
}

impl Templar {
    pub fn new() -> Self {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        hb.register_helper("default", Box::new(default_helper));
        hb.register_helper("to_json", Box::new(to_json_helper));
        hb.register_helper("to_yaml", Box::new(to_yaml_helper));
        hb.register_helper("join", Box::new(join_helper));
        hb.register_helper("to_bytes", Box::new(to_bytes_helper));
        Templar { hb }
    }

    /// True when `s` contains template syntax.
    pub fn is_template(s: &str) -> bool {
        s.contains("{{") || s.contains("{%")
    }

    /// Render one string.
    pub fn render_str(&self, s: &str, vars: &Value) -> Result<String, TemplateError> {
        if !Self::is_template(s) {
            return Ok(s.to_string());
        }
        check_jinja(s)?;
        check_collections_in_text(s, vars)?;
        self.hb
            .render_template(s, vars)
            .map_err(|e| map_render_error(&e))
    }

    /// Render every string inside `v`. A string that is a single `{{ path }}` becomes the
    /// value at that path, with its type.
    pub fn render_value(&self, v: &Value, vars: &Value) -> Result<Value, TemplateError> {
        match v {
            Value::String(s) => {
                if !Self::is_template(s) {
                    return Ok(v.clone());
                }
                if let Some(path) = single_reference(s) {
                    return lookup_path(vars, &path)
                        .cloned()
                        .ok_or(TemplateError::Undefined { variable: path });
                }
                Ok(Value::String(self.render_str(s, vars)?))
            }
            Value::Array(a) => Ok(Value::Array(
                a.iter()
                    .map(|x| self.render_value(x, vars))
                    .collect::<Result<_, _>>()?,
            )),
            Value::Object(m) => {
                let mut out = serde_json::Map::new();
                for (k, x) in m {
                    out.insert(k.clone(), self.render_value(x, vars)?);
                }
                Ok(Value::Object(out))
            }
            _ => Ok(v.clone()),
        }
    }
}

/// `{{ a.b.c }}` alone (whitespace allowed) → `a.b.c`.
fn single_reference(s: &str) -> Option<String> {
    // Surrounding text (even a newline) makes it a string, as in Ansible.
    let inner = s.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") {
        return None;
    }
    let inner = inner.trim();
    let ok = !inner.is_empty()
        && inner.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        && !inner.starts_with(|c: char| c.is_ascii_digit());
    // A helper name alone (`{{to_json}}`) is not a reference; none of ours take zero args.
    ok.then(|| inner.to_string())
}

/// Look up `a.b.0.c` in a JSON value (numeric segments index arrays).
pub fn lookup_path<'v>(vars: &'v Value, path: &str) -> Option<&'v Value> {
    let mut cur = vars;
    for seg in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Find Jinja-only constructs inside `{{ }}` and `{% %}` and explain them.
fn check_jinja(s: &str) -> Result<(), TemplateError> {
    if let Some(i) = s.find("{%") {
        let end = s[i..].find("%}").map(|e| i + e + 2).unwrap_or(s.len());
        return Err(TemplateError::Jinja {
            construct: format!("the statement `{}`", &s[i..end]),
            hint: "use handlebars blocks: {{#if cond}}...{{/if}}, {{#each list}}...{{/each}}"
                .into(),
        });
    }
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let expr = &after[..end];
        rest = &after[end + 2..];
        let trimmed = expr.trim_start_matches(['~', '{']).trim();
        // Block helpers use `as |x|` params; comments may hold anything.
        if trimmed.starts_with(['#', '/', '!', '^', '>']) || trimmed.starts_with("else") {
            continue;
        }
        let outside = outside_quotes(trimmed);
        if let Some(p) = outside.find('|') {
            let filter = trimmed[p + 1..].trim();
            let var = trimmed[..p].trim();
            let fname: String = filter
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let hint = match fname.as_str() {
                "default" | "d" => {
                    let arg = filter
                        .split_once('(')
                        .map(|(_, a)| a.trim_end_matches(')').trim())
                        .unwrap_or("\"...\"")
                        .replace('\'', "\"");
                    format!("write {{{{default {var} {arg}}}}}")
                }
                "to_json" | "to_nice_json" => format!("write {{{{to_json {var}}}}}"),
                "to_yaml" | "to_nice_yaml" => format!("write {{{{to_yaml {var}}}}}"),
                "join" => format!("write {{{{join {var} \", \"}}}}"),
                _ => "rookery helpers are default, to_json, to_yaml, join, to_bytes".into(),
            };
            return Err(TemplateError::Jinja {
                construct: format!("the filter `| {filter}` in `{{{{{expr}}}}}`"),
                hint,
            });
        }
        if outside.contains('[') {
            return Err(TemplateError::Jinja {
                construct: format!("indexing with [] in `{{{{{expr}}}}}`"),
                hint: "write a.b or list.0 instead of a['b'] or list[0]".into(),
            });
        }
        if outside.contains('(') && !trimmed.starts_with('(') && !outside.contains(" (") {
            return Err(TemplateError::Jinja {
                construct: format!("the call in `{{{{{expr}}}}}`"),
                hint: "method and function calls are not supported; use a helper".into(),
            });
        }
        for op in [" + ", " ~ ", " if ", " - ", " * "] {
            if outside.contains(op) {
                return Err(TemplateError::Jinja {
                    construct: format!("the expression `{}` in `{{{{{expr}}}}}`", op.trim()),
                    hint: "templates only substitute values; compute them in vars or set_fact"
                        .into(),
                });
            }
        }
    }
    Ok(())
}

/// A list or mapping substituted into text would print handlebars' own notation
/// (`[1, 2, ]`), not what Ansible prints; say how to get a defined format instead.
fn check_collections_in_text(s: &str, vars: &Value) -> Result<(), TemplateError> {
    // Inside blocks the context changes; a root lookup could name the wrong value.
    if s.contains("{{#") {
        return Ok(());
    }
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let expr = after[..end].trim();
        rest = &after[end + 2..];
        if let Some(path) = single_reference(&format!("{{{{{expr}}}}}"))
            && let Some(v @ (Value::Array(_) | Value::Object(_))) = lookup_path(vars, &path)
        {
            let kind = if v.is_array() { "a list" } else { "a mapping" };
            return Err(TemplateError::Render {
                detail: format!(
                    "`{path}` is {kind}; inside text write {{{{to_json {path}}}}}, \
                     {{{{to_yaml {path}}}}} or {{{{join {path} \", \"}}}}"
                ),
            });
        }
    }
    Ok(())
}

/// `s` with the contents of quoted strings blanked, so operators inside literals are ignored.
fn outside_quotes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                out.push(' ');
            }
            Some(_) => out.push(' '),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                out.push(' ');
            }
            None => out.push(c),
        }
    }
    out
}

fn map_render_error(e: &RenderError) -> TemplateError {
    match e.reason() {
        RenderErrorReason::MissingVariable(path) => TemplateError::Undefined {
            variable: path.clone().unwrap_or_else(|| "(unknown)".into()),
        },
        RenderErrorReason::TemplateError(t) => TemplateError::Syntax {
            detail: t.to_string(),
        },
        RenderErrorReason::Other(msg) if msg.starts_with("undefined variable `") => {
            TemplateError::Undefined {
                variable: msg
                    .trim_start_matches("undefined variable `")
                    .trim_end_matches('`')
                    .to_string(),
            }
        }
        other => TemplateError::Render {
            detail: other.to_string(),
        },
    }
}

/// Param `i`, failing on a missing variable the way strict mode does for plain references.
fn param<'a>(h: &'a Helper<'_>, i: usize) -> Result<&'a Value, RenderError> {
    let p = h
        .param(i)
        .ok_or_else(|| RenderErrorReason::ParamNotFoundForIndex("helper", i))?;
    if p.is_value_missing() {
        let name = p
            .relative_path()
            .cloned()
            .unwrap_or_else(|| "(unknown)".into());
        return Err(RenderError::from(RenderErrorReason::Other(format!(
            "undefined variable `{name}`"
        ))));
    }
    Ok(p.value())
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn default_helper(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let v = h
        .param(0)
        .filter(|p| !p.is_value_missing())
        .map(|p| p.value());
    let text = match v {
        Some(v) if !v.is_null() => value_text(v),
        _ => value_text(param(h, 1)?),
    };
    out.write(&text)?;
    Ok(())
}

/// How a value prints inside text: scalars plainly, collections as JSON.
fn value_text(v: &Value) -> String {
    match v {
        Value::Array(_) | Value::Object(_) => v.to_string(),
        other => scalar_text(other),
    }
}

fn to_json_helper(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    out.write(&param(h, 0)?.to_string())?;
    Ok(())
}

fn to_yaml_helper(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let y = rookery_yaml::to_string(param(h, 0)?);
    out.write(y.trim_end_matches('\n'))?;
    Ok(())
}

fn join_helper(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let list = param(h, 0)?;
    let sep = match h.param(1) {
        Some(p) => scalar_text(p.value()),
        None => ",".into(),
    };
    let Value::Array(items) = list else {
        return Err(
            RenderErrorReason::Other(format!("join: expected a list, found {list}")).into(),
        );
    };
    let parts: Vec<String> = items.iter().map(value_text).collect();
    out.write(&parts.join(&sep))?;
    Ok(())
}

fn to_bytes_helper(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let v = param(h, 0)?;
    let n = parse_size(&scalar_text(v))
        .map_err(|e| RenderError::from(RenderErrorReason::Other(format!("to_bytes: {e}"))))?;
    out.write(&n.to_string())?;
    Ok(())
}

/// `10Gi` → 10737418240, `1.5G` → 1500000000, `512` → 512. Suffixes: K/M/G/T/P (decimal,
/// optional trailing `B`) and Ki/Mi/Gi/Ti/Pi (binary, optional `B`), case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (like 10Gi or 500M)"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        "p" => 1e15,
        "ki" => 1024.0,
        "mi" => 1024.0 * 1024.0,
        "gi" => 1024.0 * 1024.0 * 1024.0,
        "ti" => 1024.0f64.powi(4),
        "pi" => 1024.0f64.powi(5),
        _ => return Err(format!("`{s}`: unknown size unit")),
    };
    let bytes = (n * mult).round();
    if !(0.0..1.8e19).contains(&bytes) {
        return Err(format!("`{s}` is out of range"));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_ansible_style_references() {
        let t = Templar::new();
        let v = json!({"a": "x<y>", "b": {"c": 3}, "l": [1, 2]});
        assert_eq!(t.render_str("{{ a }}-{{b.c}}", &v).unwrap(), "x<y>-3");
        assert_eq!(
            t.render_value(&json!("{{ l }}"), &v).unwrap(),
            json!([1, 2])
        );
        assert_eq!(t.render_value(&json!("{{ b.c }}"), &v).unwrap(), json!(3));
        assert_eq!(t.render_str("{{join l \", \"}}", &v).unwrap(), "1, 2");
        assert_eq!(t.render_str("{{default nope \"d\"}}", &v).unwrap(), "d");
        assert_eq!(t.render_str("{{default a \"d\"}}", &v).unwrap(), "x<y>");
        assert_eq!(t.render_str("{{to_json b}}", &v).unwrap(), "{\"c\":3}");
        assert_eq!(
            t.render_str("{{to_bytes \"10Gi\"}}", &v).unwrap(),
            "10737418240"
        );
    }

    #[test]
    fn undefined_variables_are_named() {
        let t = Templar::new();
        let v = json!({"a": {}});
        assert_eq!(
            t.render_str("x {{ missing }} y", &v).unwrap_err(),
            TemplateError::Undefined {
                variable: "missing".into()
            }
        );
        assert_eq!(
            t.render_value(&json!("{{ a.b }}"), &v).unwrap_err(),
            TemplateError::Undefined {
                variable: "a.b".into()
            }
        );
        let e = t.render_str("{{to_json zz}}", &v).unwrap_err();
        assert_eq!(
            e,
            TemplateError::Undefined {
                variable: "zz".into()
            }
        );
    }

    #[test]
    fn jinja_is_explained() {
        let t = Templar::new();
        let v = json!({"x": 1});
        let e = t.render_str("{{ x | default('y') }}", &v).unwrap_err();
        assert!(e.to_string().contains("{{default x \"y\"}}"), "{e}");
        let e = t.render_str("{% if x %}a{% endif %}", &v).unwrap_err();
        assert!(e.to_string().contains("#if"), "{e}");
        let e = t.render_str("{{ x['a'] }}", &v).unwrap_err();
        assert!(e.to_string().contains("[]"), "{e}");
        // A `|` inside a quoted helper argument is fine.
        assert_eq!(t.render_str("{{default x \"|\"}}", &v).unwrap(), "1");
    }

    #[test]
    fn collections_in_text_are_explained() {
        let t = Templar::new();
        let v = json!({"l": [1, 2], "m": {"a": 1}});
        let e = t.render_str("items: {{ l }}", &v).unwrap_err().to_string();
        assert!(
            e.contains("`l` is a list") && e.contains("to_json l"),
            "{e}"
        );
        assert!(t.render_str("m: {{ m }}", &v).is_err());
        // Whole-value references keep their type instead.
        assert_eq!(
            t.render_value(&json!("{{ l }}"), &v).unwrap(),
            json!([1, 2])
        );
        assert_eq!(
            t.render_str("{{#each l}}{{this}},{{/each}}", &v).unwrap(),
            "1,2,"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10Gi").unwrap(), 10 * 1024 * 1024 * 1024);
        assert_eq!(parse_size("1.5G").unwrap(), 1_500_000_000);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("4KiB").unwrap(), 4096);
        assert!(parse_size("ten").is_err());
    }
}
