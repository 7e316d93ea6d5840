//! Kubeconfig errors on one line, with quoted text left out: a parser quoting the offending
//! line could quote a token.

use std::path::Path;

use super::Error;

pub(super) fn kubeconfig_error(path: &Path, error: &dyn std::error::Error) -> Error {
    let mut reason = String::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        let text = cause.to_string();
        let line = text.lines().next().unwrap_or_default();
        if !reason.contains(line) {
            if !reason.is_empty() {
                reason.push_str(": ");
            }
            reason.push_str(line);
        }
        next = cause.source();
    }
    Error::Kubeconfig {
        path: path.to_path_buf(),
        reason: without_quoted_text(&reason),
    }
}

/// Replaces quoted text longer than three characters with `"…"`.
fn without_quoted_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(['"', '\'', '`']) {
        let quote = rest[start..].chars().next().expect("found above");
        let after = &rest[start + 1..];
        match after.find(quote) {
            Some(end) if end > 3 => {
                out.push_str(&rest[..start]);
                out.push_str("\"…\"");
                rest = &after[end + 1..];
            }
            Some(end) => {
                out.push_str(&rest[..start + end + 2]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_quoted_text_out_of_kubeconfig_errors() {
        assert_eq!(
            without_quoted_text("invalid type: string \"s3cr3t-token\", expected a map at 'x'"),
            "invalid type: string \"…\", expected a map at 'x'"
        );
        assert_eq!(
            without_quoted_text("unclosed bracket '['"),
            "unclosed bracket '['"
        );
    }
}
