//! Cutting text to a byte budget without splitting a character: API fields (an Event's note,
//! a termination message quoted in a condition) have byte limits, and the text comes from
//! programs that may write any UTF-8.

/// At most `max` bytes from the start of `text`, cut at a character boundary.
pub fn head(text: &str, max: usize) -> &str {
    let mut at = max.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    &text[..at]
}

/// At most `max` bytes from the end of `text`, cut at a character boundary.
pub fn tail(text: &str, max: usize) -> &str {
    let mut at = text.len().saturating_sub(max);
    while !text.is_char_boundary(at) {
        at += 1;
    }
    &text[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_keep_whole_characters_within_the_budget() {
        // "é" is two bytes: a cut in its middle moves to the boundary inside the budget.
        assert_eq!(head("aéb", 2), "a");
        assert_eq!(head("aéb", 3), "aé");
        assert_eq!(tail("aéb", 2), "b");
        assert_eq!(tail("aéb", 3), "éb");
        assert_eq!(head("ab", 10), "ab");
        assert_eq!(tail("ab", 10), "ab");
        assert_eq!(head("ab", 0), "");
        assert_eq!(tail("ab", 0), "");
    }
}
