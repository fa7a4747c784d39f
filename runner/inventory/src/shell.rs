//! POSIX shell word splitting, as Python's `shlex.split` does it, for INI host lines and
//! `ansible_ssh_*_args`. Each word keeps the byte offset where it started so errors can
//! point at it.

/// A word and the byte offset of its first character in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    pub text: String,
    pub offset: usize,
}

/// Split `input` into words. With `comments`, an unquoted `#` ends the line (Ansible parses
/// INI host lines with `shlex.split(line, comments=True)`). Errors name the problem.
pub(crate) fn split(input: &str, comments: bool) -> Result<Vec<Word>, String> {
    let mut words = Vec::new();
    let mut cur: Option<Word> = None;
    let mut chars = input.char_indices().peekable();
    let start = |cur: &mut Option<Word>, at: usize| {
        cur.get_or_insert_with(|| Word {
            text: String::new(),
            offset: at,
        });
    };
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = cur.take() {
                    words.push(w);
                }
            }
            '#' if comments => break,
            '\'' => {
                start(&mut cur, i);
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, ch)) => push(&mut cur, ch),
                        None => return Err("unterminated single quote".to_owned()),
                    }
                }
            }
            '"' => {
                start(&mut cur, i);
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, e @ ('\\' | '"' | '$' | '`'))) => push(&mut cur, e),
                            Some((_, '\n')) => {}
                            Some((_, other)) => {
                                push(&mut cur, '\\');
                                push(&mut cur, other);
                            }
                            None => return Err("unterminated double quote".to_owned()),
                        },
                        Some((_, ch)) => push(&mut cur, ch),
                        None => return Err("unterminated double quote".to_owned()),
                    }
                }
            }
            '\\' => {
                start(&mut cur, i);
                match chars.next() {
                    Some((_, '\n')) => {}
                    Some((_, ch)) => push(&mut cur, ch),
                    None => return Err("trailing backslash".to_owned()),
                }
            }
            other => {
                start(&mut cur, i);
                push(&mut cur, other);
            }
        }
    }
    if let Some(w) = cur.take() {
        words.push(w);
    }
    Ok(words)
}

fn push(cur: &mut Option<Word>, c: char) {
    if let Some(w) = cur {
        w.text.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str, comments: bool) -> Vec<String> {
        split(s, comments)
            .unwrap()
            .into_iter()
            .map(|w| w.text)
            .collect()
    }

    #[test]
    fn quotes_escapes_and_comments() {
        assert_eq!(
            texts(
                r#"-o ProxyCommand="ssh -W %h:%p -q ops@bastion" -o 'A=b c'"#,
                false
            ),
            vec![
                "-o",
                "ProxyCommand=ssh -W %h:%p -q ops@bastion",
                "-o",
                "A=b c"
            ]
        );
        assert_eq!(
            texts(r#"h1 a="x y" b=\"q # tail"#, true),
            vec!["h1", "a=x y", "b=\"q"]
        );
        assert_eq!(texts("a '' b", false), vec!["a", "", "b"]);
        assert!(split("a 'b", false).is_err());
        assert_eq!(split("  ab cd", false).unwrap()[1].offset, 5);
    }
}
