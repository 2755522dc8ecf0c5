//! `$(VAR)` references in a worker's command and arguments, expanded the way Kubernetes expands
//! container `command`/`args`: `$(NAME)` becomes the variable's value when it is defined and stays
//! as written when it is not; `$$` is a literal `$` (so `$$(NAME)` stays `$(NAME)`); a `$` before
//! anything else, or an unterminated `$(`, is kept as is.

/// The names of the variables `input` refers to with `$(NAME)` (not those escaped as
/// `$$(NAME)`), in order, exactly as [`expand`] would look them up.
pub fn references(input: &str) -> Vec<String> {
    let names = std::cell::RefCell::new(Vec::new());
    expand(input, |name| {
        names.borrow_mut().push(name.to_string());
        None
    });
    names.into_inner()
}

/// Expands `input` using `lookup` for variable values.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let mut chars = after.chars();
        match chars.next() {
            None => {
                // A trailing `$` is literal.
                out.push('$');
                rest = after;
            }
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('(') => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            Some(other) => {
                out.push('$');
                out.push(other);
                rest = chars.as_str();
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::{expand, references};

    fn env(name: &str) -> Option<String> {
        match name {
            "MODELSERVER_SOCKET" => Some("/run/ms/worker-0.sock".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_like_kubernetes() {
        let cases = [
            ("--uds=$(MODELSERVER_SOCKET)", "--uds=/run/ms/worker-0.sock"),
            (
                "$(MODELSERVER_SOCKET)$(MODELSERVER_SOCKET)",
                "/run/ms/worker-0.sock/run/ms/worker-0.sock",
            ),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$$(MODELSERVER_SOCKET)", "$(MODELSERVER_SOCKET)"),
            ("$$$(MODELSERVER_SOCKET)", "$/run/ms/worker-0.sock"),
            ("a$(EMPTY)b", "ab"),
            ("price $5", "price $5"),
            (
                "unterminated $(MODELSERVER_SOCKET",
                "unterminated $(MODELSERVER_SOCKET",
            ),
            ("trailing $", "trailing $"),
            ("$()", "$()"),
            (
                "héllo $(MODELSERVER_SOCKET) ü",
                "héllo /run/ms/worker-0.sock ü",
            ),
            ("$é", "$é"),
            ("plain", "plain"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, env), want, "input {input:?}");
        }
    }

    #[test]
    fn lists_the_variables_referred_to() {
        assert_eq!(
            references("--a=$(A) $$(ESCAPED) $(B)$(A) $(UNTERMINATED"),
            vec!["A", "B", "A"]
        );
        assert!(references("plain $5").is_empty());
    }
}
