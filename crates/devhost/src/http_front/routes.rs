//! ASP.NET route templates as the HTTP front serves them: parsing segments, parameters and
//! inline constraints, matching a request path to route values, and route precedence.

/// Why a route template cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("function '{function}': route template '{template}' is invalid: {message}")]
    Invalid {
        function: String,
        template: String,
        message: String,
    },
    /// Valid for the host, but the dev host does not implement it.
    #[error("function '{function}': route template '{template}': {message}, which the dev host does not support")]
    Unsupported {
        function: String,
        template: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Parameter(Parameter),
}

#[derive(Debug, Clone, PartialEq)]
struct Parameter {
    name: String,
    optional: bool,
    default: Option<String>,
    catch_all: bool,
    constraints: Vec<Constraint>,
}

/// ASP.NET's inline route constraints.
#[derive(Debug, Clone, PartialEq)]
enum Constraint {
    Int,
    Long,
    Bool,
    Guid,
    Alpha,
    Number,
    Min(i64),
    Max(i64),
    Range(i64, i64),
    Length(usize, usize),
    MinLength(usize),
    MaxLength(usize),
    /// `regex(...)`, `datetime`, `file`, `nonfile`, `required`: accepted, not checked.
    Unchecked,
}

impl Constraint {
    fn parse(name: &str, args: Option<&str>) -> Result<Self, String> {
        let numbers = || -> Result<Vec<i64>, String> {
            args.unwrap_or("")
                .split(',')
                .map(|a| a.trim().parse::<i64>())
                .collect::<Result<_, _>>()
                .map_err(|_| format!("constraint '{name}' needs integer arguments"))
        };
        let lengths = || -> Result<Vec<usize>, String> {
            numbers()?
                .into_iter()
                .map(|n| {
                    usize::try_from(n).map_err(|_| format!("constraint '{name}': negative length"))
                })
                .collect()
        };
        let lower = name.to_ascii_lowercase();
        let plain = |c: Constraint| {
            if args.is_some() {
                Err(format!("constraint '{name}' takes no arguments"))
            } else {
                Ok(c)
            }
        };
        match (lower.as_str(), args.is_some()) {
            ("int", _) => plain(Constraint::Int),
            ("long", _) => plain(Constraint::Long),
            ("bool", _) => plain(Constraint::Bool),
            ("guid", _) => plain(Constraint::Guid),
            ("alpha", _) => plain(Constraint::Alpha),
            ("decimal" | "double" | "float", _) => plain(Constraint::Number),
            ("datetime" | "required" | "file" | "nonfile", _) => plain(Constraint::Unchecked),
            ("regex", true) => Ok(Constraint::Unchecked),
            ("min", true) => match numbers()?[..] {
                [n] => Ok(Constraint::Min(n)),
                _ => Err("constraint 'min' takes one argument".into()),
            },
            ("max", true) => match numbers()?[..] {
                [n] => Ok(Constraint::Max(n)),
                _ => Err("constraint 'max' takes one argument".into()),
            },
            ("range", true) => match numbers()?[..] {
                [low, high] => Ok(Constraint::Range(low, high)),
                _ => Err("constraint 'range' takes two arguments".into()),
            },
            ("length", true) => match lengths()?[..] {
                [n] => Ok(Constraint::Length(n, n)),
                [low, high] => Ok(Constraint::Length(low, high)),
                _ => Err("constraint 'length' takes one or two arguments".into()),
            },
            ("minlength", true) => match lengths()?[..] {
                [n] => Ok(Constraint::MinLength(n)),
                _ => Err("constraint 'minlength' takes one argument".into()),
            },
            ("maxlength", true) => match lengths()?[..] {
                [n] => Ok(Constraint::MaxLength(n)),
                _ => Err("constraint 'maxlength' takes one argument".into()),
            },
            _ => Err(format!("unknown constraint '{name}'")),
        }
    }

    fn accepts(&self, value: &str) -> bool {
        let integer = || value.trim().parse::<i64>().ok();
        let chars = value.chars().count();
        match self {
            Constraint::Int => value.trim().parse::<i32>().is_ok(),
            Constraint::Long => integer().is_some(),
            Constraint::Bool => {
                let v = value.trim();
                v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
            }
            Constraint::Guid => uuid::Uuid::parse_str(value.trim()).is_ok(),
            Constraint::Alpha => value.chars().all(|c| c.is_ascii_alphabetic()),
            Constraint::Number => value.trim().parse::<f64>().is_ok(),
            Constraint::Min(min) => integer().is_some_and(|n| n >= *min),
            Constraint::Max(max) => integer().is_some_and(|n| n <= *max),
            Constraint::Range(min, max) => integer().is_some_and(|n| (*min..=*max).contains(&n)),
            Constraint::Length(min, max) => (*min..=*max).contains(&chars),
            Constraint::MinLength(min) => chars >= *min,
            Constraint::MaxLength(max) => chars <= *max,
            Constraint::Unchecked => true,
        }
    }
}

/// A parsed ASP.NET route template (`orders/{id:int}/{detail?}`, `files/{*path}`): literal
/// segments matched ignoring case, `{name}` parameters with optional `?`, `=default`, inline
/// constraints (`:int`, `:alpha`, `:min(1)`, …; `regex` and `datetime` are accepted but not
/// checked), and a final catch-all `{*name}`. Segments mixing literals and parameters
/// (`{a}.{b}`) are not supported.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteTemplate {
    segments: Vec<Segment>,
}

impl RouteTemplate {
    /// Parses `template`; `function` only names the function in errors.
    pub fn parse(function: &str, template: &str) -> Result<Self, RouteError> {
        let invalid = |message: String| RouteError::Invalid {
            function: function.to_string(),
            template: template.to_string(),
            message,
        };
        let trimmed = template.trim_matches('/');
        let mut segments = Vec::new();
        if !trimmed.is_empty() {
            for text in trimmed.split('/') {
                if text.is_empty() {
                    return Err(invalid("it has an empty segment".into()));
                }
                segments.push(parse_segment(text).map_err(|e| match e {
                    SegmentError::Invalid(message) => invalid(message),
                    SegmentError::Complex => RouteError::Unsupported {
                        function: function.to_string(),
                        template: template.to_string(),
                        message: format!("segment '{text}' mixes literals and parameters"),
                    },
                })?);
            }
        }
        let mut names: Vec<String> = Vec::new();
        for (index, segment) in segments.iter().enumerate() {
            let Segment::Parameter(p) = segment else {
                continue;
            };
            if p.catch_all && index + 1 != segments.len() {
                return Err(invalid(format!(
                    "the catch-all parameter '{}' must be the last segment",
                    p.name
                )));
            }
            if p.catch_all && p.optional {
                return Err(invalid(format!(
                    "the catch-all parameter '{}' cannot be optional",
                    p.name
                )));
            }
            if names.iter().any(|n| n.eq_ignore_ascii_case(&p.name)) {
                return Err(invalid(format!("parameter '{}' appears twice", p.name)));
            }
            names.push(p.name.clone());
        }
        Ok(Self { segments })
    }

    /// The route values when `path` (as received, percent-encoded) matches: one per parameter
    /// that has a value, decoded, in template order.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        let parts: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        let mut values = Vec::new();
        for (index, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Literal(text) => {
                    let part = decode_path(parts.get(index)?);
                    if part.to_lowercase() != text.to_lowercase() {
                        return None;
                    }
                }
                Segment::Parameter(p) if p.catch_all => {
                    let rest = decode_path(&parts.get(index..).unwrap_or_default().join("/"));
                    if !rest.is_empty() {
                        p.accepts(&rest).then_some(())?;
                        values.push((p.name.clone(), rest));
                    } else if let Some(default) = &p.default {
                        values.push((p.name.clone(), default.clone()));
                    }
                    return Some(values);
                }
                Segment::Parameter(p) => match parts.get(index) {
                    Some(part) if !part.is_empty() => {
                        let value = decode_path(part);
                        p.accepts(&value).then_some(())?;
                        values.push((p.name.clone(), value));
                    }
                    Some(_) => return None,
                    None if p.optional => {}
                    None => values.push((p.name.clone(), p.default.clone()?)),
                },
            }
        }
        (parts.len() <= self.segments.len()).then_some(values)
    }

    /// ASP.NET's inbound precedence, one digit per segment, smaller first: literal 1,
    /// constrained parameter 2, parameter 3, constrained catch-all 4, catch-all 5.
    pub(super) fn precedence(&self) -> Vec<u8> {
        self.segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(_) => 1,
                Segment::Parameter(p) => {
                    let digit = if p.catch_all { 5 } else { 3 };
                    if p.constraints.is_empty() {
                        digit
                    } else {
                        digit - 1
                    }
                }
            })
            .collect()
    }
}

impl Parameter {
    fn accepts(&self, value: &str) -> bool {
        self.constraints.iter().all(|c| c.accepts(value))
    }
}

enum SegmentError {
    Invalid(String),
    Complex,
}

/// One segment: `{parameter}` alone, or a literal where `{{` and `}}` stand for braces.
fn parse_segment(text: &str) -> Result<Segment, SegmentError> {
    let is_parameter = text.starts_with('{') && !text.starts_with("{{") && text.ends_with('}');
    let inner = if is_parameter {
        &text[1..text.len() - 1]
    } else {
        text
    };
    let mut unescaped = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '{' || c == '}' {
            if chars.peek() != Some(&c) {
                return Err(SegmentError::Complex);
            }
            chars.next();
        }
        unescaped.push(c);
    }
    if is_parameter {
        parse_parameter(&unescaped).map(Segment::Parameter)
    } else {
        Ok(Segment::Literal(unescaped))
    }
}

/// The inside of `{...}`: `[*|**]name[:constraint[(args)]]...[=default][?]`. As in ASP.NET, a
/// final `?` marks the parameter optional before anything else is read.
fn parse_parameter(body: &str) -> Result<Parameter, SegmentError> {
    let invalid = |message: String| SegmentError::Invalid(message);
    let (optional, text) = match body.strip_suffix('?') {
        Some(text) => (true, text),
        None => (false, body),
    };
    let (catch_all, rest) = match text.strip_prefix("**").or_else(|| text.strip_prefix('*')) {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let name_end = rest.find([':', '=']).unwrap_or(rest.len());
    let name = &rest[..name_end];
    if name.is_empty() || name.contains(['*', '{', '}', '?']) {
        return Err(invalid(format!("'{{{body}}}' has no valid parameter name")));
    }
    let mut rest = &rest[name_end..];
    let mut constraints = Vec::new();
    while let Some(after) = rest.strip_prefix(':') {
        let end = after.find(['(', ':', '=']).unwrap_or(after.len());
        let constraint = &after[..end];
        rest = &after[end..];
        let mut args = None;
        if let Some(inside) = rest.strip_prefix('(') {
            // The closing parenthesis is the one the rest of the parameter follows (a regex may
            // hold parentheses of its own).
            let close = inside
                .match_indices(')')
                .map(|(i, _)| i)
                .find(|&i| matches!(inside[i + 1..].chars().next(), None | Some(':' | '=')))
                .ok_or_else(|| invalid(format!("constraint '{constraint}' has no closing ')'")))?;
            args = Some(&inside[..close]);
            rest = &inside[close + 1..];
        }
        constraints.push(Constraint::parse(constraint, args).map_err(invalid)?);
    }
    let default = match rest {
        "" => None,
        _ => match rest.strip_prefix('=') {
            Some(_) if optional => {
                return Err(invalid(format!(
                    "'{{{body}}}' is optional and has a default value"
                )))
            }
            Some(default) => Some(default.to_string()),
            None => {
                return Err(invalid(format!(
                    "'{{{body}}}' has unexpected text '{rest}'"
                )))
            }
        },
    };
    Ok(Parameter {
        name: name.to_string(),
        optional,
        default,
        catch_all,
        constraints,
    })
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decoding; a `%` not followed by two hex digits stays as it is.
pub(super) fn percent_decode(text: &str, plus_is_space: bool, keep_slash: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(high), Some(low)) if !(keep_slash && high * 16 + low == b'/') => {
                    out.push(high * 16 + low);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A path segment as Kestrel decodes it: everything but `%2F`.
fn decode_path(text: &str) -> String {
    percent_decode(text, false, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(text: &str) -> RouteTemplate {
        RouteTemplate::parse("f", text).unwrap()
    }

    fn values(pairs: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn route_templates_match_as_aspnet_does() {
        let orchestrators = template("api/orchestrators/{functionName}/{instanceId?}");
        assert_eq!(
            orchestrators.matches("/api/orchestrators/Hello"),
            values(&[("functionName", "Hello")])
        );
        assert_eq!(
            orchestrators.matches("/API/Orchestrators/Hello/abc%20d/"),
            values(&[("functionName", "Hello"), ("instanceId", "abc d")])
        );
        assert_eq!(orchestrators.matches("/api/orchestrators"), None);
        assert_eq!(orchestrators.matches("/api/orchestrators/a/b/c"), None);
        assert_eq!(orchestrators.matches("/api/orchestrators//b"), None);

        let typed = template("api/items/{id:int}/{kind:alpha=all}");
        assert_eq!(
            typed.matches("/api/items/5"),
            values(&[("id", "5"), ("kind", "all")])
        );
        assert_eq!(
            typed.matches("/api/items/5/Books"),
            values(&[("id", "5"), ("kind", "Books")])
        );
        assert_eq!(typed.matches("/api/items/x"), None);
        assert_eq!(typed.matches("/api/items/5/b00ks"), None);
        assert_eq!(typed.matches("/api/items/99999999999"), None, "beyond int");

        let ranged = template("{n:range(1,10):int}/{g:guid?}/{s:length(2,3)}");
        assert!(ranged
            .matches("/10/00000000-0000-0000-0000-000000000000/ab")
            .is_some());
        assert!(ranged
            .matches("/11/00000000-0000-0000-0000-000000000000/ab")
            .is_none());
        assert!(ranged.matches("/1/not-a-guid/ab").is_none());
        assert!(ranged
            .matches("/1/00000000-0000-0000-0000-000000000000/abcd")
            .is_none());

        let catch_all = template("api/instances/{*path}");
        assert_eq!(
            catch_all.matches("/api/instances/abc/raiseEvent/Go"),
            values(&[("path", "abc/raiseEvent/Go")])
        );
        assert_eq!(catch_all.matches("/api/instances"), values(&[]));
        assert_eq!(
            template("files/{**rest}").matches("/files/a%2Fb/c"),
            values(&[("rest", "a%2Fb/c")]),
            "an encoded slash stays encoded, as Kestrel leaves it"
        );

        // Constraints with parentheses of their own, and brace escapes.
        let regex = template("codes/{code:regex(^\\d{{3}}(x)?$)}/{{lit}}");
        assert_eq!(
            regex.matches("/codes/123/{lit}"),
            values(&[("code", "123")])
        );
        assert_eq!(template("").matches("/"), values(&[]));
        assert_eq!(template("").matches("/x"), None);
    }

    #[test]
    fn bad_route_templates_are_refused() {
        for (text, unsupported) in [
            ("a/{*rest}/b", false),
            ("{*rest?}", false),
            ("{id}/{ID}", false),
            ("{id:nope}", false),
            ("{id:min(x)}", false),
            ("{}", false),
            ("{id=1?}", false),
            ("{id:int(3)}", false),
            ("a//b", false),
            ("{id:int", true),
            ("{a}.{b}", true),
            ("file-{name}", true),
        ] {
            match RouteTemplate::parse("f", text) {
                Err(RouteError::Unsupported { .. }) => assert!(unsupported, "{text}"),
                Err(RouteError::Invalid { .. }) => assert!(!unsupported, "{text}"),
                Ok(parsed) => panic!("{text} parsed as {parsed:?}"),
            }
        }
    }

    #[test]
    fn literal_routes_win_over_parameters() {
        let specific = template("api/items/special");
        let general = template("api/items/{id:int}");
        let loose = template("api/items/{id}");
        let any = template("api/{*rest}");
        assert!(specific.precedence() < general.precedence());
        assert!(general.precedence() < loose.precedence());
        assert!(loose.precedence() < any.precedence());
    }
}
