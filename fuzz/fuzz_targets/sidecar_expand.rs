//! `$(VAR)` expansion of a worker's command never panics; with no variable defined it changes
//! nothing but `$$` (which stands for `$`); and a defined variable's value is never expanded
//! again. Read-only use of `modelserver_sidecar::workers::expand`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use modelserver_sidecar::workers::expand::expand;

#[derive(Debug, Arbitrary)]
struct Input {
    text: String,
    name: String,
    value: String,
}

fuzz_target!(|input: Input| {
    let unchanged = expand(&input.text, |_| None);
    if !input.text.contains("$$") {
        assert_eq!(unchanged, input.text);
    }
    let lookup = |n: &str| (n == input.name).then(|| input.value.clone());
    let _ = expand(&input.text, lookup);
    // The value of $(NAME) is inserted as is.
    if !input.name.contains(')') {
        let reference = format!("$({})", input.name);
        assert_eq!(expand(&reference, lookup), input.value);
    }
});
